using System.CommandLine;
using Adp.Purification;

namespace Adp.Cli;

/// <summary>The purifier's settings as command-line options (paper defaults).</summary>
public sealed class PurifierOptions
{
    public readonly Option<string?> Preset = new("--preset")
    {
        Description = $"named purifier settings ({string.Join(", ", PurifierPresets.All.Keys)}); default: the score checkpoint's recommended " +
                      $"preset, else {PurifierPresets.Default}; flags below override single fields",
    };
    public readonly Option<double> Sigma = new("--sigma") { Description = "noise σ injected before purification", DefaultValueFactory = _ => 0.25 };
    public readonly Option<int> Steps = new("--steps") { Description = "maximum purification steps T", DefaultValueFactory = _ => 10 };
    public readonly Option<double> Lambda = new("--lambda") { Description = "step-size scale λ", DefaultValueFactory = _ => 0.05 };
    public readonly Option<double> Delta = new("--delta") { Description = "probe δ", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<double> AlphaMin = new("--alpha-min") { DefaultValueFactory = _ => 1e-5 };
    public readonly Option<double> AlphaMax = new("--alpha-max") { DefaultValueFactory = _ => 0.1 };
    public readonly Option<double> Tau = new("--tau") { Description = "stop threshold τ on the step size", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<bool> Faithful = new("--faithful") { Description = "reproduce the research code's range-map quirk" };
    public readonly Option<string> Kind = new("--purifier") { Description = "adp (default), gated, reinject, tweedie or langevin", DefaultValueFactory = _ => "adp" };
    public readonly Option<double> GateThreshold = new("--gate-threshold") { Description = "gated: ‖h(x)‖₂ above which the full σ is used", DefaultValueFactory = _ => 10.0 };
    public readonly Option<double> GateSigma = new("--gate-sigma") { Description = "gated: σ for inputs below the threshold", DefaultValueFactory = _ => 0.1 };
    public readonly Option<string> Reinject = new("--reinject") { Description = "reinject: comma-separated decreasing σs", DefaultValueFactory = _ => "0.25,0.15,0.05" };
    public readonly Option<int> LangevinSteps = new("--langevin-steps") { DefaultValueFactory = _ => 1500 };
    public readonly Option<double> LangevinLevel = new("--langevin-level") { Description = "langevin: σ level of the score s = h/σ", DefaultValueFactory = _ => 0.05 };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Preset, Sigma, Steps, Lambda, Delta, AlphaMin, AlphaMax, Tau, Faithful, Kind, GateThreshold, GateSigma, Reinject, LangevinSteps, LangevinLevel })
            cmd.Options.Add(o);
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

    /// <summary>The purifier the options describe, over a score network.</summary>
    public IPurifier Build(ParseResult p, TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> score,
        IReadOnlyDictionary<string, string>? scoreMetadata = null)
    {
        var s = Read(p, scoreMetadata);
        return p.GetValue(Kind) switch
        {
            "adp" => new AdaptiveStepPurifier(score, s),
            "gated" => new DetectionGatedPurifier(score, s, p.GetValue(GateThreshold), p.GetValue(GateSigma)),
            "reinject" => new ReinjectionPurifier(score, s, ParseSigmas(p.GetValue(Reinject)!)),
            "tweedie" => new TweediePurifier(score, s.Sigma),
            "langevin" => new LangevinPurifier(score, s.Sigma, p.GetValue(LangevinLevel), p.GetValue(LangevinSteps)),
            var k => throw new AdpException($"--purifier: expected adp, gated, reinject, tweedie or langevin, got '{k}'"),
        };
    }

    private static double[] ParseSigmas(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = parts.Select(v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var d) && d >= 0 ? d
            : throw new AdpException($"--reinject: expected comma-separated non-negative numbers, got '{text}'")).ToArray();
        return values.Length > 0 ? values : throw new AdpException("--reinject: expected at least one σ");
    }
}
