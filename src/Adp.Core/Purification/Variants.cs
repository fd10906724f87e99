using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Purification;

// Purification variants of METHOD.md §3 and the long-run baseline of §6. Each is an IPurifier, so the
// defended classifier, the CLI and the evaluations take any of them. Scalars are held through each native call (see
// RootedScalars).

/// <summary>Detection-gated noise: full σ only for images whose score norm ‖h(x)‖₂ exceeds a threshold (likely
/// attacked or off-manifold), a reduced σ otherwise; then the usual ADP steps.</summary>
public sealed class DetectionGatedPurifier(nn.Module<Tensor, Tensor> score, PurifierSettings settings, double threshold, double reducedSigma) : IPurifier
{
    private readonly AdaptiveStepPurifier _inner = new(score, settings);

    public string Describe() => $"ADP detection-gated (‖h‖ > {threshold} → σ={settings.Sigma}, else σ={reducedSigma}) {settings.Describe()}";

    public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
    {
        using var scope = NewDisposeScope();
        Tensor sigma;
        using (no_grad())
        using (EvalMode.Enter(score))
        {
            var norm = score.forward(x).flatten(1).norm(1);
            using var limit = threshold.ToScalar();
            sigma = where(norm.gt(limit), settings.Sigma, reducedSigma).to(x.dtype);
        }
        var eps = random.Randn(x.shape).to(x.device);
        var r = _inner.Purify(x, eps, sigma, keepTrajectory);
        scope.MoveToOuter(r.Images, r.StepSizes, r.StepsTaken);
        if (r.Trajectory is not null) scope.MoveToOuter(r.Trajectory);
        return r;
    }
}

/// <summary>Noise re-injection with decreasing σ: ADP with σ₁, then fresh noise σ₂ on its output and ADP
/// again, and so on. Step sizes and trajectories of the stages are concatenated.</summary>
public sealed class ReinjectionPurifier(nn.Module<Tensor, Tensor> score, PurifierSettings settings, IReadOnlyList<double> sigmas) : IPurifier
{
    public string Describe() => $"ADP with re-injection σ = {string.Join(" → ", sigmas)}; each stage {settings.DescribeSteps()}";

    public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
    {
        if (sigmas.Count == 0) throw new AdpException("re-injection: expected at least one σ");
        using var scope = NewDisposeScope();
        var cur = x;
        var steps = new List<Tensor>();
        var trajectories = new List<Tensor>();
        Tensor? taken = null;
        long calls = 0;
        foreach (var sigma in sigmas)
        {
            var r = new AdaptiveStepPurifier(score, settings with { Sigma = sigma }).Purify(cur, random, keepTrajectory);
            cur = r.Images;
            steps.Add(r.StepSizes);
            if (r.Trajectory is not null) trajectories.Add(r.Trajectory);
            taken = taken is null ? r.StepsTaken : taken.Plus(r.StepsTaken);
            calls += r.NetworkCallsPerImageSum;
        }
        var result = new PurificationResult
        {
            Images = cur.MoveToOuterDisposeScope(),
            StepSizes = cat(steps).MoveToOuterDisposeScope(),
            StepsTaken = taken!.MoveToOuterDisposeScope(),
            Trajectory = keepTrajectory ? cat(trajectories).MoveToOuterDisposeScope() : null,
            NetworkCallsPerImageSum = calls,
        };
        return result;
    }
}

/// <summary>One-shot Tweedie denoising: x₀ = clip(x + σε), x̂ = clip(x₀ + σ·h(x₀)). One network call. An image whose
/// score is not finite anywhere (a diverged network) is not stepped: it keeps x₀ and takes 0 steps, as ADP stops it.</summary>
public sealed class TweediePurifier(nn.Module<Tensor, Tensor> score, double sigma) : IPurifier
{
    public string Describe() => $"one-shot Tweedie σ={sigma}";

    public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
    {
        using var _ = no_grad();
        using var eval = EvalMode.Enter(score);
        using var scope = NewDisposeScope();
        var x0 = x.Plus(random.Randn(x.shape).to(x.dtype).to(x.device).Times(sigma)).ClampToUnitInPlace();
        var h = score.forward(x0);
        var usable = FiniteRows(h);
        var xhat = where(usable.view(-1, 1, 1, 1), x0.Plus(h.nan_to_num(0, 0, 0).Times(sigma)).ClampToUnitInPlace(), x0);
        long n = x.shape[0];
        return new PurificationResult
        {
            Images = xhat.MoveToOuterDisposeScope(),
            Trajectory = keepTrajectory ? stack([x0, xhat]).MoveToOuterDisposeScope() : null,
            StepSizes = where(usable, sigma, 0.0).to(x.dtype).view(1, n).MoveToOuterDisposeScope(),
            StepsTaken = usable.to(ScalarType.Int64).MoveToOuterDisposeScope(),
            NetworkCallsPerImageSum = n,
        };
    }

    /// <summary>Per image (row of N×…): whether every value of <paramref name="t"/> is finite; N booleans.</summary>
    internal static Tensor FiniteRows(Tensor t) => t.flatten(1).isfinite().all(1);
}

/// <summary>
/// Long-run Langevin purification in the style of Hill et al. (2021), the baseline ADP's step count is compared
/// with: after noise injection, K steps of x ← clip(x + η·s(x) + √(2η)·z) with the score s = h/σ_level at a
/// fixed level, η = stepScale·σ_level². Costs K network calls per run (K = 1,500 by default).
/// </summary>
public sealed class LangevinPurifier(nn.Module<Tensor, Tensor> score, double sigma = 0.25, double sigmaLevel = 0.05,
    int steps = 1500, double stepScale = 0.01) : IPurifier
{
    public string Describe() => $"Langevin σ={sigma} level σ={sigmaLevel} K={steps} η={stepScale}·σ²";

    public PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false)
    {
        if (steps < 1) throw new AdpException($"--langevin-steps: expected at least 1, got {steps}");
        if (!(sigmaLevel > 0) || !double.IsFinite(sigmaLevel)) throw new AdpException($"--langevin-level: expected a positive σ, got {sigmaLevel}");
        using var _ = no_grad();
        using var eval = EvalMode.Enter(score);
        using var scope = NewDisposeScope();
        double eta = stepScale * sigmaLevel * sigmaLevel;
        long n = x.shape[0];
        var cur = x.Plus(random.Randn(x.shape).to(x.device).Times(sigma)).ClampToUnitInPlace();
        var trajectory = keepTrajectory ? new List<Tensor> { cur.clone() } : null;
        // An image whose score stops being finite stops for good (keeps its iterate), as in ADP: NaN must not reach the output.
        var running = ones(new long[] { n }, ScalarType.Bool, device: x.device);
        var taken = zeros(new long[] { n }, ScalarType.Int64, device: x.device);
        for (int k = 0; k < steps; k++)
        {
            using var step = NewDisposeScope();
            var s = score.forward(cur).Over(sigmaLevel);
            running.logical_and_(TweediePurifier.FiniteRows(s));
            var next = cur.Plus(s.nan_to_num(0, 0, 0).Times(eta)).Plus(random.Randn(x.shape).to(x.device).Times(Math.Sqrt(2 * eta)))
                .ClampToUnitInPlace();
            cur.copy_(where(running.view(-1, 1, 1, 1), next, cur));
            taken.add_(running.to(ScalarType.Int64), RootedScalars.IntOne);
            if (trajectory is not null && (k + 1) % Math.Max(1, steps / 10) == 0) trajectory.Add(cur.clone().MoveToOuterDisposeScope());
        }
        return new PurificationResult
        {
            Images = cur.MoveToOuterDisposeScope(),
            Trajectory = trajectory is null ? null : stack(trajectory).MoveToOuterDisposeScope(),
            StepSizes = where(taken.gt(RootedScalars.IntZero), eta, 0.0).to(x.dtype).view(1, n).MoveToOuterDisposeScope(),
            StepsTaken = taken.MoveToOuterDisposeScope(),
            NetworkCallsPerImageSum = n * steps,
        };
    }
}
