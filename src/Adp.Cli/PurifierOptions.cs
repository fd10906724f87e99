using System.CommandLine;
using Adp.Purification;

namespace Adp.Cli;

/// <summary>The purifier's settings as command-line options (paper defaults).</summary>
public sealed class PurifierOptions
{
    public readonly Option<double> Sigma = new("--sigma") { Description = "noise σ injected before purification", DefaultValueFactory = _ => 0.25 };
    public readonly Option<int> Steps = new("--steps") { Description = "maximum purification steps T", DefaultValueFactory = _ => 10 };
    public readonly Option<double> Lambda = new("--lambda") { Description = "step-size scale λ", DefaultValueFactory = _ => 0.05 };
    public readonly Option<double> Delta = new("--delta") { Description = "probe δ", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<double> AlphaMin = new("--alpha-min") { DefaultValueFactory = _ => 1e-5 };
    public readonly Option<double> AlphaMax = new("--alpha-max") { DefaultValueFactory = _ => 0.1 };
    public readonly Option<double> Tau = new("--tau") { Description = "stop threshold τ on the step size", DefaultValueFactory = _ => 1e-3 };
    public readonly Option<bool> Faithful = new("--faithful") { Description = "reproduce the research code's range-map quirk" };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Sigma, Steps, Lambda, Delta, AlphaMin, AlphaMax, Tau, Faithful }) cmd.Options.Add(o);
    }

    public PurifierSettings Read(ParseResult p)
    {
        var s = new PurifierSettings(p.GetValue(Sigma), p.GetValue(Steps), p.GetValue(Lambda), p.GetValue(Delta),
            p.GetValue(AlphaMin), p.GetValue(AlphaMax), p.GetValue(Tau), p.GetValue(Faithful));
        s.Validate();
        return s;
    }
}
