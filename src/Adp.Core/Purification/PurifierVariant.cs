using System.Globalization;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Adp.Purification;

/// <summary>The purifiers built on one score network: ADP itself (METHOD.md §2) and the variants of Variants.cs (§3, §6).</summary>
public enum PurifierKind { Adp, Gated, Reinject, Tweedie, Langevin }

/// <summary>
/// Which purifier runs, with the variant's own parameters; the ADP settings (<see cref="PurifierSettings"/>) come separately:
/// ADP and the gated variant read all of them, re-injection all but σ (its stages bring their own), Tweedie and Langevin
/// only σ (<see cref="Canonical"/>). One description shared by the CLI
/// (<c>--purifier</c>, <c>--gate-threshold</c>, <c>--gate-sigma</c>, <c>--reinject</c>, <c>--langevin-steps</c>,
/// <c>--langevin-level</c>), the tuning (<see cref="Evaluation.PresetTuning"/>) and its stored points (<see cref="Key"/>).
/// Defaults are the CLI's.
/// </summary>
public sealed record PurifierVariant
{
    /// <summary>Plain ADP.</summary>
    public static readonly PurifierVariant Adp = new();

    public PurifierKind Kind { get; init; } = PurifierKind.Adp;

    /// <summary>Gated: the score norm ‖h(x)‖₂ above which the full σ is injected.</summary>
    public double GateThreshold { get; init; } = 10.0;

    /// <summary>Gated: the σ injected below the threshold.</summary>
    public double GateSigma { get; init; } = 0.1;

    /// <summary>Re-injection: the σ of each stage, in order (each stage is ADP with the settings' T and λ at that σ; the
    /// settings' own σ is not used).</summary>
    public IReadOnlyList<double> ReinjectSigmas { get; init; } = [0.25, 0.15, 0.05];

    /// <summary>Langevin: steps K.</summary>
    public int LangevinSteps { get; init; } = 1500;

    /// <summary>Langevin: the σ level of the score s = h/σ_level.</summary>
    public double LangevinLevel { get; init; } = 0.05;

    /// <summary>Whether the purifier reads the ADP step rule (T, λ, δ, α clamp, τ, faithful); Tweedie and Langevin do not.</summary>
    [JsonIgnore]
    public bool UsesSteps => Kind is PurifierKind.Adp or PurifierKind.Gated or PurifierKind.Reinject;

    /// <summary>Whether the purifier reads the settings' σ; re-injection takes its σs from <see cref="ReinjectSigmas"/>.</summary>
    [JsonIgnore]
    public bool UsesSigma => Kind != PurifierKind.Reinject;

    /// <summary>The settings with every field this purifier does not read set to its default: two settings with equal
    /// canonical forms (and the same <see cref="Key"/>) purify identically.</summary>
    public PurifierSettings Canonical(PurifierSettings s)
    {
        var defaults = new PurifierSettings();
        if (!UsesSteps) s = defaults with { Sigma = s.Sigma };
        return UsesSigma ? s : s with { Sigma = defaults.Sigma };
    }

    /// <summary>Score-network calls per image per purification run at most (ADP takes 2 per step and may stop early), the
    /// cost a tuning compares settings by.</summary>
    public long MaxNetworkCalls(PurifierSettings s) => Kind switch
    {
        PurifierKind.Adp => 2L * s.Steps,
        PurifierKind.Gated => 1 + 2L * s.Steps,
        PurifierKind.Reinject => 2L * s.Steps * ReinjectSigmas.Count,
        PurifierKind.Tweedie => 1,
        _ => LangevinSteps,
    };

    /// <summary>The most steps one purification run takes (what <see cref="PurificationResult.StepsTaken"/> counts): T for ADP
    /// and the gated variant, T per stage for re-injection, 1 for Tweedie, K for Langevin.</summary>
    public int MaxSteps(PurifierSettings s) => Kind switch
    {
        PurifierKind.Adp or PurifierKind.Gated => s.Steps,
        PurifierKind.Reinject => s.Steps * ReinjectSigmas.Count,
        PurifierKind.Tweedie => 1,
        _ => LangevinSteps,
    };

    /// <summary>A canonical one-line name with the variant's parameters (no commas, so it fits a CSV cell): "adp",
    /// "gated threshold=10 sigma=0.1", "reinject sigmas=0.25/0.15/0.05", "tweedie", "langevin steps=1500 level=0.05"
    /// (numbers round-trip). Two variants with the same key purify identically given the same settings.</summary>
    [JsonIgnore]
    public string Key => Kind switch
    {
        PurifierKind.Adp => "adp",
        PurifierKind.Gated => $"gated threshold={F(GateThreshold)} sigma={F(GateSigma)}",
        PurifierKind.Reinject => $"reinject sigmas={string.Join("/", ReinjectSigmas.Select(F))}",
        PurifierKind.Tweedie => "tweedie",
        PurifierKind.Langevin => $"langevin steps={LangevinSteps} level={F(LangevinLevel)}",
        _ => throw new AdpException($"--purifier: unknown kind {Kind}"),
    };

    /// <exception cref="AdpException">a parameter out of range, naming its option.</exception>
    public void Validate()
    {
        switch (Kind)
        {
            case PurifierKind.Gated:
                if (!(GateThreshold >= 0) || !double.IsFinite(GateThreshold))
                    throw new AdpException($"--gate-threshold: expected a finite value ≥ 0, got {GateThreshold}");
                if (!(GateSigma >= 0) || !double.IsFinite(GateSigma))
                    throw new AdpException($"--gate-sigma: expected a finite σ ≥ 0, got {GateSigma}");
                break;
            case PurifierKind.Reinject:
                if (ReinjectSigmas is null || ReinjectSigmas.Count == 0 || ReinjectSigmas.Any(s => !(s >= 0) || !double.IsFinite(s)))
                    throw new AdpException($"--reinject: expected one or more finite σ ≥ 0, got " +
                                           $"'{string.Join(",", (ReinjectSigmas ?? []).Select(F))}'");
                break;
            case PurifierKind.Langevin:
                if (LangevinSteps < 1) throw new AdpException($"--langevin-steps: expected at least 1, got {LangevinSteps}");
                if (!(LangevinLevel > 0) || !double.IsFinite(LangevinLevel))
                    throw new AdpException($"--langevin-level: expected a positive σ, got {LangevinLevel}");
                break;
        }
    }

    /// <summary>The purifier over <paramref name="score"/> (NCSNv2 output h ≈ −z/σ·σ, frozen) with the ADP settings.</summary>
    /// <exception cref="AdpException">invalid settings or variant parameters.</exception>
    public IPurifier Create(nn.Module<Tensor, Tensor> score, PurifierSettings settings)
    {
        settings.Validate();
        Validate();
        return Kind switch
        {
            PurifierKind.Adp => new AdaptiveStepPurifier(score, settings),
            PurifierKind.Gated => new DetectionGatedPurifier(score, settings, GateThreshold, GateSigma),
            PurifierKind.Reinject => new ReinjectionPurifier(score, settings, ReinjectSigmas.ToArray()),
            PurifierKind.Tweedie => new TweediePurifier(score, settings.Sigma),
            PurifierKind.Langevin => new LangevinPurifier(score, settings.Sigma, LangevinLevel, LangevinSteps),
            _ => throw new AdpException($"--purifier: unknown kind {Kind}"),
        };
    }

    /// <summary>What a table's "evaluated" column calls it: "ADP", else <see cref="Key"/>.</summary>
    [JsonIgnore]
    public string Label => Kind == PurifierKind.Adp ? "ADP" : Key;

    /// <summary>Whether <see cref="CreateDifferentiable"/> has a form of this purifier: ADP, re-injection and Tweedie (the
    /// gated variant's per-image σ and Langevin's K = 1,500 steps have none).</summary>
    [JsonIgnore]
    public bool HasDifferentiableForm => Kind is PurifierKind.Adp or PurifierKind.Reinject or PurifierKind.Tweedie;

    /// <summary>The purifier with autograd through it, for full-gradient attacks (<see cref="Attacks.FullGradientEotModel"/>):
    /// given the same noise source its forward value is <see cref="Create"/>'s.</summary>
    /// <param name="checkpointing">Recompute each purification step's network graph in the backward pass (default; memory of one
    /// step) or keep every step's graph (false: one network pass per step fewer, faster, memory growing with rows × steps;
    /// <see cref="DifferentiablePurifier.Checkpointing"/>). The gradient is the same to float rounding either way.</param>
    /// <exception cref="AdpException">invalid settings or parameters; a variant without a differentiable form
    /// (<see cref="HasDifferentiableForm"/>).</exception>
    public IDifferentiablePurifier CreateDifferentiable(nn.Module<Tensor, Tensor> score, PurifierSettings settings,
        bool checkpointing = true)
    {
        settings.Validate();
        Validate();
        return Kind switch
        {
            PurifierKind.Adp => new DifferentiablePurifier(score, settings) { Checkpointing = checkpointing },
            PurifierKind.Reinject =>
                new DifferentiableReinjection(score, settings, ReinjectSigmas.ToArray()) { Checkpointing = checkpointing },
            PurifierKind.Tweedie => new DifferentiableTweedie(score, settings.Sigma),
            _ => throw new AdpException($"--purifier {Kind.ToString().ToLowerInvariant()}: no differentiable form for a full-gradient attack " +
                                        "(adp, reinject and tweedie have one); attack it with BPDA (target=bpda, bpda-mean, …)"),
        };
    }

    /// <summary>Parses a <c>--purifier</c> value: adp, gated, reinject, tweedie or langevin.</summary>
    /// <exception cref="AdpException">another value.</exception>
    public static PurifierKind ParseKind(string text) => text switch
    {
        "adp" => PurifierKind.Adp,
        "gated" => PurifierKind.Gated,
        "reinject" => PurifierKind.Reinject,
        "tweedie" => PurifierKind.Tweedie,
        "langevin" => PurifierKind.Langevin,
        _ => throw new AdpException($"--purifier: expected adp, gated, reinject, tweedie or langevin, got '{text}'"),
    };

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
