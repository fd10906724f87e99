namespace Adp.Purification;

/// <summary>A named preset: the ADP settings, one line on where they come from, and the purifier variant it runs (null: ADP
/// itself; re-injection reads the settings' T and λ at each of its σs, <see cref="PurifierVariant"/>).</summary>
public sealed record PurifierPreset(PurifierSettings Settings, string Origin, PurifierVariant? Variant = null)
{
    /// <summary>The variant in effect (<see cref="PurifierVariant.Adp"/> when <see cref="Variant"/> is null).</summary>
    public PurifierVariant EffectiveVariant => Variant ?? PurifierVariant.Adp;
}

/// <summary>
/// Named purifier settings (and variant), selectable with <c>--preset NAME</c> by every command that purifies (explicit flags still
/// override single fields). <c>paper</c> is the paper's CIFAR-10 setting (METHOD.md §2). Data-set presets are chosen on
/// the validation split (the last 5,000 training images) for the shipped score model of that data set, on the natural
/// vs robust trade-off against the transfer attack; docs/PRESETS.md records how. A score checkpoint may carry its
/// recommended preset in the metadata key <see cref="MetadataKey"/> (`adp strip --preset NAME`); it is used when no
/// <c>--preset</c> is given.
/// </summary>
public static class PurifierPresets
{
    public const string MetadataKey = "recommended_preset";
    public const string Default = "paper";

    /// <summary>name → preset.</summary>
    public static readonly IReadOnlyDictionary<string, PurifierPreset> All =
        new Dictionary<string, PurifierPreset>
        {
            ["paper"] = new(new PurifierSettings(), "the paper's CIFAR-10 settings: σ = 0.25, T = 10, λ = 0.05, δ = 1e-3, α ∈ [1e-5, 0.1], τ = 1e-3"),
            ["faithful"] = new(new PurifierSettings(Faithful: true), "the paper's settings with the research code's range-map quirk (for parity)"),
            // λ·σ ≥ α_max: every step is the largest allowed (0.1, 40% of a Tweedie step at σ = 0.25), where the paper's λ = 0.05
            // removes only ~5% of the remaining noise per step (α ≈ λσ for Gaussian noise), leaving most of it after T = 10.
            // With the score model trained on 55,000 images, σ 0.15–0.25 at T = 10 keep the bare CNN's natural accuracy within a
            // point (68–73% transfer, inside one another's intervals); T = 20 buys 3–4 points of transfer for 3–5 of natural.
            ["fashion-mnist"] = new(new PurifierSettings(Sigma: 0.15, Steps: 10, Lambda: 1.0),
                "tuned for models/fashion-mnist-score.ckpt on the validation split (256 images, S = 4, transfer PGD-40 ε = 0.1): natural 90.2% (bare 90.6%), transfer 72.7% (σ 0.25, T 10, λ 1: 90.6% / 68.4%); docs/PRESETS.md"),
            // With the weakly trained MNIST model a smaller σ purifies better (66–72% transfer with ADP at σ 0.1–0.2, 46% at 0.3), and a
            // second injection at the same σ buys 7.4 points over ADP at the same network calls (T 40: 70.7%), where on Fashion-MNIST it
            // bought no more than the calls did.
            ["mnist"] = new(new PurifierSettings(Sigma: 0.15, Steps: 20, Lambda: 1.0),
                "tuned for models/mnist-score.ckpt on the validation split (256 images, S = 4, transfer PGD-40 ε = 0.3): re-injection σ 0.15 → 0.15, " +
                "ADP T 20 λ 1 at each: natural 100% (bare 100%), transfer 78.1% (ADP σ 0.15 T 20 λ 1, the preset until 2026-12-01: 100% / 70.7%); " +
                "docs/PRESETS.md",
                new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = [0.15, 0.15] }),
            // The same search with the adversarially trained CNN: neither purifier adds to its robustness, and the rule (most robust
            // within a point of the bare CNN's natural accuracy, ties to fewer calls) keeps ADP, at half re-injection's calls.
            ["mnist-adv"] = new(new PurifierSettings(Sigma: 0.15, Steps: 20, Lambda: 1.0),
                "for the adversarially trained models/mnist-smallcnn-adv.ckpt, chosen on the validation split (256 images, S = 4, transfer " +
                "PGD-40 ε = 0.3 on that CNN): ADP σ 0.15 T 20 λ 1, natural 99.6% (bare 99.6%), transfer 94.5% (the mnist preset's re-injection: " +
                "99.2% / 92.2%; bare 94.9%); docs/PRESETS.md"),
        };

    /// <summary>The settings of a preset; throws <see cref="AdpException"/> listing the names for an unknown one.</summary>
    public static PurifierSettings Get(string name) => Preset(name).Settings;

    /// <summary>The whole preset (settings and variant); throws <see cref="AdpException"/> listing the names for an unknown one.</summary>
    public static PurifierPreset Preset(string name) => All.TryGetValue(name, out var p) ? p
        : throw new AdpException($"--preset: unknown preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
