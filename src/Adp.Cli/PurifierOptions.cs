using System.CommandLine;
using Adp.Purification;

namespace Adp.Cli;

/// <summary>The purifier's settings as command-line options (paper defaults).</summary>
public sealed class PurifierOptions
{
    public readonly Option<string?> Preset = new("--preset")
    {
        Description = $"named purifier settings and variant ({string.Join(", ", PurifierPresets.All.Keys)}); default: the score checkpoint's " +
                      $"recommended preset, else {PurifierPresets.Default}; flags below override single fields",
    };
    public readonly Option<double> Sigma = new("--sigma") { Description = "noise σ injected before purification", DefaultValueFactory = _ => 0.25 };
    public readonly Option<int> Steps = new("--steps") { Description = "maximum purification steps T", DefaultValueFactory = _ => 10 };
    public readonly Option<double> Lambda = new("--lambda") { Description = "step-size scale λ", DefaultValueFactory = _ => 0.05 };
    public readonly Option<double> Delta = new("--delta") { Description = "probe δ", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<double> AlphaMin = new("--alpha-min") { DefaultValueFactory = _ => 1e-5 };
    public readonly Option<double> AlphaMax = new("--alpha-max") { DefaultValueFactory = _ => 0.1 };
    public readonly Option<double> Tau = new("--tau") { Description = "stop threshold τ on the step size", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<bool> Faithful = new("--faithful") { Description = "reproduce the research code's range-map quirk" };
    public readonly Option<string?> Kind = new("--purifier") { Description = "adp, gated, reinject, tweedie or langevin (default: the preset's; adp for paper)" };
    public readonly Option<double> GateThreshold = new("--gate-threshold") { Description = "gated: ‖h(x)‖₂ above which the full σ is used", DefaultValueFactory = _ => 10.0 };
    public readonly Option<double> GateSigma = new("--gate-sigma") { Description = "gated: σ for inputs below the threshold", DefaultValueFactory = _ => 0.1 };
    public readonly Option<string?> Reinject = new("--reinject")
    {
        Description = "reinject: comma-separated σs, one ADP stage each (default: the preset's, e.g. mnist's 0.15,0.15; else 0.25,0.15,0.05)",
    };
    public readonly Option<int> LangevinSteps = new("--langevin-steps") { DefaultValueFactory = _ => 1500 };
    public readonly Option<double> LangevinLevel = new("--langevin-level") { Description = "langevin: σ level of the score s = h/σ", DefaultValueFactory = _ => 0.05 };

    /// <summary>Adds every option: the ADP settings and the variant options (commands that build any purifier).</summary>
    public void AddTo(Command cmd)
    {
        AddSettingsTo(cmd);
        foreach (var o in VariantOptions) cmd.Options.Add(o);
    }

    /// <summary>The ADP settings' options (a preset and single fields).</summary>
    private Option[] SettingsOptions => [Preset, Sigma, Steps, Lambda, Delta, AlphaMin, AlphaMax, Tau, Faithful];

    /// <summary>The options that choose or parameterize a variant (not read by ADP itself).</summary>
    private Option[] VariantOptions => [Kind, GateThreshold, GateSigma, Reinject, LangevinSteps, LangevinLevel];

    /// <summary>For commands that measure ADP itself (<see cref="RequireAdp"/>): the ADP settings' options, and the variant
    /// options hidden from --help, so that giving one gets <see cref="RequireAdp"/>'s one-line explanation rather than the
    /// parser's "unrecognized".</summary>
    public void AddAdpOnlyTo(Command cmd)
    {
        AddSettingsTo(cmd);
        foreach (var o in VariantOptions)
        {
            o.Hidden = true;
            cmd.Options.Add(o);
        }
    }

    /// <summary>The first purifier option given on the command line, or null (a command evaluating the bare classifier refuses
    /// them).</summary>
    public Option? FirstGiven(ParseResult p) =>
        SettingsOptions.Concat(VariantOptions).FirstOrDefault(o => p.GetResult(o) is { Implicit: false });

    /// <summary>For commands that measure ADP itself (with <see cref="Read"/>'s settings, no checkpoint preset): refuses another
    /// <c>--purifier</c>, variant parameters, and a --preset whose purifier is a variant, with one line naming the command,
    /// instead of ignoring them.</summary>
    public void RequireAdp(ParseResult p, string command)
    {
        bool Given(Option o) => p.GetResult(o) is { Implicit: false };
        string tail = "; the variants run in `eval robust`, `eval defended`, `eval tune`, `eval replay`, `purify` and `classify`";
        if ((Given(Kind) && PurifierVariant.ParseKind(p.GetValue(Kind)!) != PurifierKind.Adp) || VariantOptions.Any(o => o != Kind && Given(o)))
            throw new AdpException($"--purifier: {command} evaluates the ADP purifier (adp){tail}");
        if (!Given(Kind) && p.GetValue(Preset) is { } name && PurifierPresets.Preset(name).Variant is { Kind: not PurifierKind.Adp } v)
            throw new AdpException($"--preset {name}: runs {v.Key}, and {command} evaluates the ADP purifier; add --purifier adp for ADP at its settings{tail}");
    }

    /// <summary>Adds the ADP settings' options only, for commands that run ADP itself: a variant option there would be accepted
    /// and ignored, so it is not offered (the parser names it as unrecognized).</summary>
    public void AddSettingsTo(Command cmd)
    {
        foreach (var o in SettingsOptions) cmd.Options.Add(o);
    }

    /// <summary>The settings: the --preset (else the score checkpoint's recommended preset, else paper), with the flags
    /// given on the command line overriding single fields.</summary>
    public PurifierSettings Read(ParseResult p, IReadOnlyDictionary<string, string>? scoreMetadata = null) =>
        Override(PurifierPresets.Get(PresetName(p, scoreMetadata)), p);

    /// <summary>Which preset <see cref="Read"/> starts from.</summary>
    public string PresetName(ParseResult p, IReadOnlyDictionary<string, string>? scoreMetadata = null) =>
        p.GetValue(Preset) ?? (scoreMetadata is not null && scoreMetadata.TryGetValue(PurifierPresets.MetadataKey, out var r) ? r : PurifierPresets.Default);

    /// <summary><paramref name="baseline"/> with only the options given on the command line replaced (for flags over a
    /// configuration file).</summary>
    public PurifierSettings Override(PurifierSettings baseline, ParseResult p)
    {
        bool Given(Option o) => p.GetResult(o) is { Implicit: false };
        var s = baseline with
        {
            Sigma = Given(Sigma) ? p.GetValue(Sigma) : baseline.Sigma,
            Steps = Given(Steps) ? p.GetValue(Steps) : baseline.Steps,
            Lambda = Given(Lambda) ? p.GetValue(Lambda) : baseline.Lambda,
            Delta = Given(Delta) ? p.GetValue(Delta) : baseline.Delta,
            AlphaMin = Given(AlphaMin) ? p.GetValue(AlphaMin) : baseline.AlphaMin,
            AlphaMax = Given(AlphaMax) ? p.GetValue(AlphaMax) : baseline.AlphaMax,
            Tau = Given(Tau) ? p.GetValue(Tau) : baseline.Tau,
            Faithful = Given(Faithful) ? p.GetValue(Faithful) : baseline.Faithful,
        };
        s.Validate();
        return s;
    }

    /// <summary>The purifier the options describe, over a score network: <see cref="ReadVariant"/> with <see cref="Read"/>'s settings.</summary>
    public IPurifier Build(ParseResult p, TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> score,
        IReadOnlyDictionary<string, string>? scoreMetadata = null) => ReadVariant(p, scoreMetadata).Create(score, Read(p, scoreMetadata));

    /// <summary>The variant the options name, validated: <c>--purifier</c> when given, else <paramref name="baseline"/> when given
    /// (e.g. a configuration file's variant), else the preset's (the --preset, else the score checkpoint's recommended preset, else
    /// paper: ADP). The variant's parameters given on the command line override the baseline's; a <c>--purifier</c> of the
    /// baseline's kind keeps its parameters, another kind starts from that kind's defaults.</summary>
    /// <exception cref="AdpException">an unknown kind or preset, a parameter out of range or of another variant, or an ADP flag
    /// the variant does not read, naming the option.</exception>
    public PurifierVariant ReadVariant(ParseResult p, IReadOnlyDictionary<string, string>? scoreMetadata = null, PurifierVariant? baseline = null)
    {
        bool Given(Option o) => p.GetResult(o) is { Implicit: false };
        string? preset = baseline is null ? PresetName(p, scoreMetadata) : null;
        var start = baseline ?? PurifierPresets.Preset(preset!).EffectiveVariant;
        string origin = baseline is not null ? ", from the configuration" : $", from the preset {preset}";
        if (Given(Kind))
        {
            var kind = PurifierVariant.ParseKind(p.GetValue(Kind)!);
            if (kind != start.Kind) start = new PurifierVariant { Kind = kind };
            (preset, origin) = (null, "");
        }
        // A variant's parameter given for another purifier would be accepted and ignored: refused instead.
        foreach (var (option, owner) in new (Option, PurifierKind)[]
                 {
                     (GateThreshold, PurifierKind.Gated), (GateSigma, PurifierKind.Gated), (Reinject, PurifierKind.Reinject),
                     (LangevinSteps, PurifierKind.Langevin), (LangevinLevel, PurifierKind.Langevin),
                 })
            if (Given(option) && start.Kind != owner)
                throw new AdpException($"{option.Name}: applies to --purifier {owner.ToString().ToLowerInvariant()} only (the purifier here is " +
                                       $"{start.Kind.ToString().ToLowerInvariant()}{origin})");
        RequireReadBy(p, start, preset);
        var v = start with
        {
            GateThreshold = Given(GateThreshold) ? p.GetValue(GateThreshold) : start.GateThreshold,
            GateSigma = Given(GateSigma) ? p.GetValue(GateSigma) : start.GateSigma,
            ReinjectSigmas = Given(Reinject) ? ParseSigmas(p.GetValue(Reinject)!) : start.ReinjectSigmas,
            LangevinSteps = Given(LangevinSteps) ? p.GetValue(LangevinSteps) : start.LangevinSteps,
            LangevinLevel = Given(LangevinLevel) ? p.GetValue(LangevinLevel) : start.LangevinLevel,
        };
        v.Validate();
        return v;
    }

    /// <summary>Refuses the ADP settings' flags that <paramref name="variant"/> does not read (e.g. --steps for Tweedie, --sigma
    /// for re-injection), which would otherwise be accepted and ignored; <paramref name="preset"/> names the preset the variant
    /// came from, if it did.</summary>
    public void RequireReadBy(ParseResult p, PurifierVariant variant, string? preset = null)
    {
        bool Given(Option o) => p.GetResult(o) is { Implicit: false };
        string name = variant.Kind.ToString().ToLowerInvariant();
        string from = preset is null ? "" : $" (the preset {preset}'s purifier; --purifier adp for ADP itself)";
        if (!variant.UsesSteps)
            foreach (var o in new Option[] { Steps, Lambda, Delta, AlphaMin, AlphaMax, Tau, Faithful })
                if (Given(o)) throw new AdpException($"{o.Name}: --purifier {name} reads σ only (ADP's step rule does not apply){from}");
        if (!variant.UsesSigma && Given(Sigma)) throw new AdpException($"--sigma: --purifier {name} takes its σs from --reinject{from}");
    }

    private static double[] ParseSigmas(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = parts.Select(v => double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
                                      && d >= 0 && double.IsFinite(d) ? d
            : throw new AdpException($"--reinject: expected comma-separated finite σ ≥ 0, got '{text}'")).ToArray();
        return values.Length > 0 ? values : throw new AdpException("--reinject: expected at least one σ");
    }
}
