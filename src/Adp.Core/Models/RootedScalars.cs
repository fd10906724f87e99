using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Models;

/// <summary>
/// Scalars that live as long as the process, for the hot paths. TorchSharp 0.107 passes a <see cref="Scalar"/>'s native
/// handle to libtorch without keeping the managed object alive, so an implicitly converted temporary (the 1.0 of
/// <c>F.elu(x, 1.0)</c>, the 2 of <c>2 * x</c>) can be finalized by a garbage collection that another thread triggers
/// during the native call, and libtorch then reads freed memory: seen as "Expected false to be true … toFloat" from elu
/// in parallel test runs, and it could as well read a wrong value. Even <c>a + b</c> of two tensors makes one (the α = 1 of
/// a.add(b, 1)). Static scalars are never finalized. (Upstream:
/// dotnet/TorchSharp pull requests 1434 and 1496 dispose such temporaries explicitly.) Where a value varies, callers
/// hold their own scalar in a <c>using</c> variable for the same reason.
/// Library code that converts scalars itself (TorchSharp's optimizers, <c>clip_grad_norm_</c>) runs inside
/// <see cref="NativeRuntime.WithoutCollection(Action)"/> instead. The test ImplicitScalarAuditTests finds every unheld conversion
/// and every call of a TorchSharp member that converts inside in the toolkit's sources.
/// </summary>
internal static class RootedScalars
{
    public static readonly Scalar Zero = 0.0.ToScalar(), One = 1.0.ToScalar(), Two = 2.0.ToScalar(), NormEpsilon = 1e-5.ToScalar();

    /// <summary>The integer 1 that TorchSharp's <c>a + b</c> passes as libtorch's α (a.add(b, 1)); its subtraction has no α.</summary>
    public static readonly Scalar IntOne = 1.ToScalar();

    /// <summary>The integer 0 of comparisons and clamps written with 0 (x.gt(0), clamp(0, 1)).</summary>
    public static readonly Scalar IntZero = 0.ToScalar();

    /// <summary>The integer 2 of TorchSharp's <c>square()</c> (pow(2)).</summary>
    public static readonly Scalar IntTwo = 2.ToScalar();

    /// <summary>a + b, as the + operator computes it, without its implicit α = 1 temporary.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, IntOne);

    /// <summary>a + b for a scalar b, as the + operator computes it, without its implicit α = 1 temporary.</summary>
    public static Tensor Plus(this Tensor a, Scalar b) => a.add(b, IntOne);

    /// <summary>255 as a float32 scalar: bytes to [0,1] (div_(255f)) and back (mul(255), the same product in float32).</summary>
    public static readonly Scalar Float255 = 255f.ToScalar();

    /// <summary>−∞ as a float32 scalar, for masking logits (masked_fill).</summary>
    public static readonly Scalar NegativeInfinity = float.NegativeInfinity.ToScalar();

    /// <summary>a + b for a double b, as <c>a + b</c> computes it, holding the scalar b through the native call. This and
    /// <see cref="Minus"/>, <see cref="Times"/>, <see cref="Over"/> take a double scalar: on an integer tensor an integer literal
    /// binds here too and gives a floating result where the operator kept the integer type; hold an integer Scalar there.</summary>
    public static Tensor Plus(this Tensor a, double b)
    {
        using var s = b.ToScalar();
        return a.add(s, IntOne);
    }

    /// <summary>a − b for a double b, as <c>a - b</c> computes it, holding the scalar b through the native call.</summary>
    public static Tensor Minus(this Tensor a, double b)
    {
        using var s = b.ToScalar();
        return a.sub(s);
    }

    /// <summary>a·b for a double b, as <c>a * b</c> and <c>b * a</c> compute it, holding the scalar b through the native call.</summary>
    public static Tensor Times(this Tensor a, double b)
    {
        using var s = b.ToScalar();
        return a.mul(s);
    }

    /// <summary>a / b for a double b, as <c>a / b</c> computes it, holding the scalar b through the native call.</summary>
    public static Tensor Over(this Tensor a, double b)
    {
        using var s = b.ToScalar();
        return a.div(s);
    }

    /// <summary>a clamped to [min, max], as <c>a.clamp(min, max)</c> computes it, holding both scalars through the native call.</summary>
    public static Tensor Clamped(this Tensor a, double min, double max)
    {
        using Scalar lo = min.ToScalar(), hi = max.ToScalar();
        return a.clamp(lo, hi);
    }

    /// <summary>a clamped to [0, 1] (image range), as <c>a.clamp(0, 1)</c> computes it.</summary>
    public static Tensor ClampedToUnit(this Tensor a) => a.clamp(IntZero, IntOne);

    /// <summary>a clamped to [0, 1] in place, as <c>a.clamp_(0, 1)</c> computes it; returns a.</summary>
    public static Tensor ClampToUnitInPlace(this Tensor a) => a.clamp_(IntZero, IntOne);

    /// <summary>Draws of N(mean, std²) of the given shape (default dtype and device, the global generator), as TorchSharp 0.107's
    /// <c>torch.normal(mean, std, size)</c> computes them (randn(size).mul_(std).add_(mean), the same bits), holding its
    /// scalars through the native calls: model constructors run beside other threads' allocations too.</summary>
    public static Tensor Normal(double mean, double std, long[] size)
    {
        using Scalar m = mean.ToScalar(), s = std.ToScalar();
        var draws = torch.randn(size);
        return draws.mul_(s).add_(m, IntOne);
    }

    /// <summary>ELU with α = 1 into a new tensor, as <c>F.elu(x, 1.0, inplace)</c> computes it in TorchSharp 0.107 (which
    /// returns a new tensor even with inplace = true).</summary>
    public static Tensor Elu(Tensor x) => x.elu(One, One, One);
}
