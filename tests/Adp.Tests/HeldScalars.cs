using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>
/// The tests' forms of <see cref="RootedScalars"/>: TorchSharp 0.107 hands libtorch a temporary <see cref="Scalar"/>'s handle
/// without keeping it alive, and tests run in parallel, so another test's allocation can collect it mid-call (CI, 2026-12-02:
/// "toFloat"). ImplicitScalarAuditTests audits the tests as it audits the toolkit; each helper computes what the operator or
/// call it replaces computes (the same libtorch call, or one equal in IEEE arithmetic, said where so).
/// </summary>
internal static class HeldScalars
{
    public static readonly TorchSharp.Scalar NaN = float.NaN, PositiveInfinity = float.PositiveInfinity;

    /// <summary><c>full(shape, value)</c> (float32: a float fill takes the default dtype), holding the fill value.</summary>
    public static Tensor Full(long[] shape, float value)
    {
        using TorchSharp.Scalar v = value;
        return full(shape, v);
    }

    /// <summary><c>c - x</c> for a float c: (−x) + c, equal to c − x in IEEE arithmetic (negation is exact).</summary>
    public static Tensor SubtractedFrom(this Tensor x, float c)
    {
        using TorchSharp.Scalar s = c;
        return x.neg().add(s, RootedScalars.IntOne);
    }

    /// <summary><c>x[i] += v</c> on an element view (<c>x.view(-1)[i]</c>): adds v in place, holding the scalar.</summary>
    public static void AddInPlace(this Tensor element, double v)
    {
        using var s = v.ToScalar();
        element.add_(s, RootedScalars.IntOne);
    }

    /// <summary>Starts a thread that collects generation 0 continuously, so that anything left to the finalizer is freed as
    /// early as the runtime allows; disposing stops it. Generation 0 is where short-lived temporaries die, and its cost does not
    /// grow with the rest of the suite's heap.</summary>
    public static IDisposable CollectContinuously()
    {
        var stop = new CancellationTokenSource();
        var collector = new Thread(() => { while (!stop.IsCancellationRequested) { GC.Collect(0); GC.WaitForPendingFinalizers(); } });
        collector.Start();
        return new Stopper(() => { stop.Cancel(); collector.Join(); stop.Dispose(); });
    }

    private sealed class Stopper(Action stop) : IDisposable
    {
        public void Dispose() => stop();
    }

    /// <summary><c>x.square()</c>: pow(2), as TorchSharp computes it, with the rooted 2.</summary>
    public static Tensor Squared(this Tensor x) => x.pow(RootedScalars.IntTwo);
}
