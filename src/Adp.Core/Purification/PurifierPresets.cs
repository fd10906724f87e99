namespace Adp.Purification;

/// <summary>
/// Named purifier settings, selectable with <c>--preset NAME</c> by every command that purifies (explicit flags still
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

    /// <summary>name → (settings, one line on where they come from).</summary>
    public static readonly IReadOnlyDictionary<string, (PurifierSettings Settings, string Origin)> All =
        new Dictionary<string, (PurifierSettings, string)>
        {
            ["paper"] = (new PurifierSettings(), "the paper's CIFAR-10 settings: σ = 0.25, T = 10, λ = 0.05, δ = 1e-3, α ∈ [1e-5, 0.1], τ = 1e-3"),
            ["faithful"] = (new PurifierSettings(Faithful: true), "the paper's settings with the research code's range-map quirk (for parity)"),
        };

    /// <summary>The settings of a preset; throws <see cref="AdpException"/> listing the names for an unknown one.</summary>
    public static PurifierSettings Get(string name) => All.TryGetValue(name, out var p) ? p.Settings
        : throw new AdpException($"--preset: unknown preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
