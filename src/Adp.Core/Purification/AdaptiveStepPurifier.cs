using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Purification;

/// <summary>What one purification run produced.</summary>
public sealed class PurificationResult : IDisposable
{
    /// <summary>The last iterate, N×C×H×W in [0,1] — what the classifier sees.</summary>
    public required Tensor Images { get; init; }
    /// <summary>x₀ (after noise injection) then each step's iterate: (T+1)×N×C×H×W; null unless requested. Variants:
    /// re-injection concatenates its stages; Tweedie holds x₀ and x̂; Langevin x₀ and every K/10-th iterate.</summary>
    public Tensor? Trajectory { get; init; }
    /// <summary>α per step per image, zero once an image has stopped: T×N. Variants: re-injection concatenates one T-row
    /// block per stage; Tweedie and Langevin, whose step is constant, hold one row (σ resp. η; 0 for an image that took
    /// no step).</summary>
    public required Tensor StepSizes { get; init; }
    /// <summary>Steps each image took (0…T).</summary>
    public required Tensor StepsTaken { get; init; }
    /// <summary>Score-network calls, counted per image (2 per running image per step).</summary>
    public long NetworkCallsPerImageSum { get; init; }

    public void Dispose()
    {
        Images.Dispose();
        Trajectory?.Dispose();
        StepSizes.Dispose();
        StepsTaken.Dispose();
    }
}

/// <summary>
/// ADP purification (Yoon, Hwang & Lee 2021; METHOD.md §2): inject Gaussian noise, then take up to T
/// deterministic steps along the σ-free score h with an adaptive step size from a finite-difference probe:
/// z = ⟨h(x), h(x+δh(x))⟩/⟨h(x),h(x)⟩, α = clamp(λδ/(1−z), α_min, α_max). An image stops for good once
/// α ≤ τ, and from then on is not sent through the network (the research code kept computing it); so does an image
/// whose score is zero or not finite (α would be NaN). The run ends when every image has stopped. Runs under no_grad
/// with the score network in evaluation mode; <see cref="DifferentiablePurifier"/> is the autograd version.
/// </summary>
public sealed class AdaptiveStepPurifier(nn.Module<Tensor, Tensor> score, PurifierSettings settings) : IPurifier
{
    public PurifierSettings Settings { get; } = settings;

    public string Describe() => "ADP " + Settings.Describe();

    /// <summary>Images per score-network call (default <see cref="ChunkFor"/>). Chunks bound memory (the backward pass of
    /// <see cref="DifferentiablePurifier"/> holds one chunk's graph: CIFAR-10 full-gradient peak RSS −38% at 16 against 64)
    /// and keep activations near the cache; in the real paths their speed differs by less than run-to-run noise
    /// (docs/BENCHMARKS.md). The network's output is bitwise the same for any chunk (NetworkChunkTests), so results do not
    /// depend on it. 0 = one call for the whole batch.</summary>
    public int NetworkChunk { get; init; } = ChunkFor(score);

    /// <summary>The chunk used where a score network is not an <see cref="Ncsnv2"/> (its activation size is unknown).</summary>
    public const int DefaultNetworkChunk = 64;

    /// <summary>Bytes of one full-resolution activation tensor (ngf channels) per chunk that the default chunk aims at (the
    /// network alone ran fastest at 1.6–2 MiB: 32 images at ngf 16 on 28×28, 16 at ngf 32 on 32×32).</summary>
    public const long ChunkActivationBytes = 2 << 20;

    /// <summary>The default images per network call for <paramref name="score"/>: for NCSNv2 the largest power of two whose
    /// full-resolution activations (N·ngf·H·W float32) fit in <see cref="ChunkActivationBytes"/>, between 1 and 64
    /// (ngf 16 at 28×28: 32; ngf 32 at 32×32: 16; the paper's ngf 128 at 32×32: 4); otherwise <see cref="DefaultNetworkChunk"/>.</summary>
    public static int ChunkFor(nn.Module<Tensor, Tensor> score)
    {
        if (score is not Ncsnv2 net) return DefaultNetworkChunk;
        var c = net.Config;
        long perImage = (long)c.Ngf * c.ImageSize * c.ImageSize * sizeof(float);
        int chunk = 1;
        while (chunk < DefaultNetworkChunk && 2L * chunk * perImage <= ChunkActivationBytes) chunk *= 2;
        return chunk;
    }

    /// <summary>Purifies with fresh noise drawn from <paramref name="random"/> (one row per image).</summary>
    public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
    {
        using var draw = random.Randn(x.shape);
        using var eps = draw.to(x.dtype).to(x.device);
        return Purify(x, eps, keepTrajectory);
    }

    /// <summary>Purifies with the given standard-normal noise ε (x₀ = clip(x + σε)).</summary>
    public PurificationResult Purify(Tensor x, Tensor eps, bool keepTrajectory = false) => Purify(x, eps, null, keepTrajectory);

    /// <summary>As above with a noise σ per image (N), e.g. for detection-gated noise. The score network runs in
    /// evaluation mode (its training flags are restored afterwards).</summary>
    public PurificationResult Purify(Tensor x, Tensor eps, Tensor? sigmaPerImage, bool keepTrajectory)
    {
        Settings.Validate();
        using var _ = no_grad();
        using var eval = EvalMode.Enter(score);
        using var outer = NewDisposeScope();
        long n = x.shape[0];
        var s = Settings;
        using var sigma = s.Sigma.ToScalar();  // held: see RootedScalars
        var cur = x.Plus(sigmaPerImage is null ? eps.mul(sigma) : sigmaPerImage.view(-1, 1, 1, 1) * eps).ClampToUnitInPlace();
        if (s.Faithful) cur = RangeMap(cur);
        var trajectory = keepTrajectory ? new List<Tensor> { cur.clone() } : null;
        var stepSizes = zeros(new long[] { s.Steps, n }, dtype: x.dtype, device: x.device);
        var running = ones(new long[] { n }, ScalarType.Bool, device: x.device);
        var stepsTaken = zeros(new long[] { n }, ScalarType.Int64, device: x.device);
        long calls = 0;
        for (int t = 0; t < s.Steps; t++)
        {
            using var scope = NewDisposeScope();
            var idx = running.nonzero().flatten();
            long m = idx.shape[0];
            if (m == 0) break;
            var xr = cur.index_select(0, idx);
            var alpha = StepSize(score, xr, s, out var g, NetworkChunk);
            calls += 2 * m;
            using var tau = s.Tau.ToScalar();
            var go = alpha.gt(tau);
            running.index_copy_(0, idx, go);
            // The research code breaks out of its loop, before any update, once every image has stopped.
            if (!go.any().item<bool>()) break;
            var goIdx = idx.masked_select(go);
            var pick = go.nonzero().flatten();
            var stepped = Advance(xr.index_select(0, pick), alpha.index_select(0, pick), g.index_select(0, pick), s.Faithful);
            // Faithful: while any image still steps, the research code updates every image, the stopped ones with a
            // zero step, so the inverse range map hits them too (purification/adp.py at 497e2d4, lines 47–52).
            if (s.Faithful) cur.copy_(InverseMap(cur).ClampToUnitInPlace());
            cur.index_copy_(0, goIdx, stepped);
            stepSizes[t].index_copy_(0, goIdx, alpha.index_select(0, pick));
            stepsTaken.index_add_(0, goIdx, ones_like(goIdx), RootedScalars.IntOne);
            trajectory?.Add(cur.clone().MoveToOuterDisposeScope());
        }
        // After the loop has ended early the iterate stays as it is: the trajectory repeats it to T+1 entries.
        while (trajectory is not null && trajectory.Count < s.Steps + 1) trajectory.Add(cur.clone());
        var result = new PurificationResult
        {
            Images = cur.clone().MoveToOuterDisposeScope(),
            Trajectory = trajectory is null ? null : stack(trajectory).MoveToOuterDisposeScope(),
            StepSizes = stepSizes.MoveToOuterDisposeScope(),
            StepsTaken = stepsTaken.MoveToOuterDisposeScope(),
            NetworkCallsPerImageSum = calls,
        };
        return result;
    }

    /// <summary>One update: clip₀¹(x + α·g); in faithful mode clip₀¹(invmap(x + α·g)), the research code's order
    /// (its logged iterates match this to 2e-7 given its step sizes).</summary>
    internal static Tensor Advance(Tensor x, Tensor alpha, Tensor g, bool faithful)
    {
        var next = x.Plus(alpha.view(-1, 1, 1, 1) * g);
        return (faithful ? InverseMap(next) : next).clamp_(RootedScalars.Zero, RootedScalars.One);
    }

    /// <summary>The research code's range map, x·255/256 + 1/512, and its inverse (x − 1/512)·256/255.</summary>
    internal static Tensor RangeMap(Tensor x) => x.Times(255.0 / 256).Plus(1.0 / 512);
    internal static Tensor InverseMap(Tensor x) => x.Times(256.0 / 255).Minus(1.0 / 510);

    /// <summary>
    /// α = clamp(λδ/(1−z), α_min, α_max) per image (N), with z from the probe h(x+δh(x)); α_min when z ≥ 1. An image
    /// whose score h(x) is zero or not finite, or whose z is not finite (a probe h that is not finite), gets α = 0,
    /// which is ≤ τ for every valid τ, so it stops (case 5: a zero score gives z = 0/0). Returns h(x) (N×C×H×W) in
    /// <paramref name="g"/>; the caller must not step an image with α = 0 along it (h may hold NaN).
    /// </summary>
    public static Tensor StepSize(nn.Module<Tensor, Tensor> score, Tensor x, PurifierSettings s, out Tensor g, int chunk = 0)
    {
        g = Chunked(score, x, chunk);
        return StepSize(score, x, g, s, chunk);
    }

    /// <summary>α for images x (N×C×H×W) whose score h(x) is <paramref name="g"/> (N×C×H×W, computed by the caller): one probe
    /// call h(x + δ·g), then as <see cref="StepSize(nn.Module{Tensor, Tensor}, Tensor, PurifierSettings, out Tensor, int)"/>.
    /// α carries no graph only if it runs under no_grad or with x and g detached (as <see cref="DifferentiablePurifier"/>
    /// calls it).</summary>
    public static Tensor StepSize(nn.Module<Tensor, Tensor> score, Tensor x, Tensor g, PurifierSettings s, int chunk = 0)
    {
        using var scope = NewDisposeScope();
        using var delta = s.Delta.ToScalar();  // held: see RootedScalars
        var probe = x.Plus(g.mul(delta));
        var g2 = Chunked(score, probe, chunk);
        // 1 − z is a difference of nearly equal numbers (z → 1 as δ → 0), so the inner products are taken in
        // float64: in float32 their rounding alone moves α by ~1e-4 relative.
        var gd = g.to(ScalarType.Float64).flatten(1);
        var g2d = g2.to(ScalarType.Float64).flatten(1);
        var gg = (gd * gd).sum(1);
        var z = (gd * g2d).sum(1) / gg;
        return Alpha(z, gg, s).to(g.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>α from z and ‖h‖² (float64, N each): where(z ≥ 1, α_min, clamp(λδ/(1 − z), α_min, α_max)), 0 where ‖h‖² is 0 or
    /// not finite or z is not finite. Written with held scalars (see <see cref="RootedScalars"/>), bit for bit what the
    /// operators (λδ / (1 − z), z.ge(1), …) compute.</summary>
    internal static Tensor Alpha(Tensor z, Tensor gg, PurifierSettings s)
    {
        using var scope = NewDisposeScope();
        using Scalar lambdaDelta = (s.Lambda * s.Delta).ToScalar(), alphaMin = s.AlphaMin.ToScalar(), alphaMax = s.AlphaMax.ToScalar();
        var raw = z.negative().Plus(RootedScalars.IntOne).reciprocal().mul(lambdaDelta);
        // where() takes its doubles as 0-dim tensors, which the dispose scope holds (tensors, unlike scalars, are tracked).
        var alpha = where(z.ge(RootedScalars.IntOne), s.AlphaMin, raw.clamp(alphaMin, alphaMax));
        var usable = gg.gt(RootedScalars.IntZero).logical_and(gg.isfinite()).logical_and(z.isfinite());
        return where(usable, alpha, 0.0).MoveToOuterDisposeScope();
    }

    /// <summary>score(x) evaluated in chunks of at most <paramref name="chunk"/> images (0: in one call).</summary>
    public static Tensor Chunked(nn.Module<Tensor, Tensor> score, Tensor x, int chunk)
    {
        long n = x.shape[0];
        if (chunk <= 0 || n <= chunk) return score.forward(x);
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (long start = 0; start < n; start += chunk) parts.Add(score.forward(x.narrow(0, start, Math.Min(chunk, n - start))));
        return cat(parts).MoveToOuterDisposeScope();
    }
}
