using System.Globalization;
using System.Text;
using ScottPlot;

namespace Adp.Evaluation;

/// <summary>One point of a robust-accuracy-vs-ε curve: accuracy (0–1, mean over seeds) and its 95% interval over images
/// as the report computed it (<see cref="RobustRow"/>).</summary>
public sealed record EpsilonPoint(double Epsilon, double Accuracy, double Low, double High, int Images, int Seeds);

/// <summary>A curve: one attack kind and target of one report folder, ε = 0 being the unattacked accuracy.</summary>
public sealed record EpsilonSeries(string Label, IReadOnlyList<EpsilonPoint> Points);

/// <summary>
/// Robust accuracy against the radius ε across report folders (issue #12 item 3: where the noise screens the
/// perturbation and where it does not), e.g. the paper preset's and the tuned preset's sweeps in one figure. Each
/// folder's attacked rows are grouped by attack protocol up to the radius (see <see cref="FromRows"/>) for one
/// decision rule; each curve starts at ε = 0 with the folder's unattacked row (clean bare, or natural defended) where the
/// folder has one, so a curve shows what the attack takes from what the defense keeps.
/// </summary>
public static class EpsilonCurves
{
    /// <summary>Curves of one folder's rows (<paramref name="rule"/>: a decision rule name for defended rows; bare rows
    /// always use their own). A curve is one attack protocol up to its radius and step (kind, target, norm, iterations,
    /// restarts, start, loss, EOT), so a CE and a DLR attack, or ℓ∞ and ℓ2, are separate curves; where one protocol was
    /// run twice at a radius the lower accuracy (the stronger result) is kept. Only curves with an attacked radius appear
    /// (ℓ∞ radii ≥ 1, the unbounded sanity attack, are left out); points are ordered by ε.</summary>
    public static List<EpsilonSeries> FromRows(string label, IReadOnlyList<RobustRow> rows, string rule)
    {
        bool Wanted(RobustRow r) => r.Defended ? r.Rule == rule : r.Rule == RobustEvaluation.BareRule;
        static EpsilonPoint Point(RobustRow r) => new(r.Epsilon, r.Mean, r.CiLow, r.CiHigh, r.Images, r.PerSeed.Count);
        var natural = rows.Where(r => IsUnattacked(r) && Wanted(r)).GroupBy(r => r.Defended).ToDictionary(g => g.Key, g => g.First());
        var series = new List<EpsilonSeries>();
        foreach (var g in rows.Where(r => r.Epsilon > 0 && !(IsLinf(r.Protocol) && r.Epsilon >= 1) && Wanted(r))
                     .GroupBy(r => (Key: ProtocolKey(r.Protocol), r.Defended)))
        {
            var points = g.GroupBy(r => r.Epsilon).Select(e => Point(e.MinBy(r => r.Mean)!)).ToList();
            if (natural.TryGetValue(g.Key.Defended, out var n)) points.Add(Point(n));
            series.Add(new EpsilonSeries($"{label}{(label.Length > 0 ? ": " : "")}{Describe(g.First().Protocol)}", points.OrderBy(p => p.Epsilon).ToList()));
        }
        return series;
    }

    /// <summary>A row of no attack (clean bare or natural defended), the ε = 0 start of a curve.</summary>
    public static bool IsUnattacked(RobustRow row) => row.Protocol.StartsWith("no attack");

    /// <summary>The protocol (<see cref="AttackSpec.Protocol"/>) without its ε= and step= tokens.</summary>
    private static string ProtocolKey(string protocol) =>
        string.Join(' ', protocol.Split(' ').Where(t => !t.StartsWith("ε=") && !t.StartsWith("step=")));

    private static bool IsLinf(string protocol) => protocol.Split(' ') is { Length: > 2 } p && p[2] == "ℓ∞";

    /// <summary>"preprocessor-blind PGD-40", "full-gradient APGD-DLR-20, EOT 20", "bare PGD-40, L2": target, kind, loss
    /// (when not cross-entropy), iterations, EOT, norm (when not ℓ∞; the plot font has no ℓ).</summary>
    private static string Describe(string protocol)
    {
        var t = protocol.Split(' ');
        string Value(string key) => t.FirstOrDefault(x => x.StartsWith(key + "="))?[(key.Length + 1)..] ?? "";
        string loss = Value("loss") switch { "CrossEntropy" or "" => "", "Dlr" => "-DLR", var l => "-" + l.ToLowerInvariant() };
        string target = t.Length > 1 ? t[1] switch
        {
            "Bare" => "bare",
            "Blind" => "preprocessor-blind",
            "Bpda" => "BPDA+EOT",
            "BpdaSignVote" => "BPDA+EOT (sign vote)",
            "BpdaMean" => "BPDA+EOT (mean)",
            "BpdaScore" => "BPDA+EOT (score-aware)",
            "Full" => "full-gradient",
            var other => other,
        } : "";
        string eot = Value("EOT") is { Length: > 0 } e ? $", EOT {e}" : "";
        string norm = IsLinf(protocol) ? "" : ", L2";
        string cascade = protocol.Contains("(cascade") ? ", cascade" : "";
        return $"{target} {t[0].ToUpperInvariant()}{loss}-{Value("iters")}{eot}{norm}{cascade}";
    }

    /// <summary>series,epsilon,accuracy,ci95_low,ci95_high,images,seeds — one line per point, invariant culture.</summary>
    public static string Csv(IEnumerable<EpsilonSeries> series)
    {
        var sb = new StringBuilder("series,epsilon,accuracy,ci95_low,ci95_high,images,seeds\n");
        foreach (var s in series)
            foreach (var p in s.Points)
                sb.Append(string.Join(",", "\"" + s.Label.Replace("\"", "\"\"") + "\"", F(p.Epsilon), F(p.Accuracy), F(p.Low), F(p.High),
                    p.Images.ToString(CultureInfo.InvariantCulture), p.Seeds.ToString(CultureInfo.InvariantCulture))).Append('\n');
        return sb.ToString();
    }

    /// <summary>Writes the curves (accuracy in %, 95% intervals as error bars) as a PNG, atomically.</summary>
    /// <exception cref="AdpException">no series to draw.</exception>
    public static void Plot(IReadOnlyList<EpsilonSeries> series, string path, string title)
    {
        if (series.Count == 0) throw new AdpException($"{path}: no attacked radius to plot (the folders hold no attack with ε > 0)");
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int k = 0; k < series.Count; k++)
        {
            var s = series[k];
            var color = palette.GetColor(k);
            double[] xs = s.Points.Select(p => p.Epsilon).ToArray(), ys = s.Points.Select(p => 100 * p.Accuracy).ToArray();
            var line = plot.Add.Scatter(xs, ys, color);
            line.LegendText = s.Label;
            line.MarkerSize = 6;
            if (k % 2 == 1) line.LinePattern = LinePattern.Dashed;  // curves that coincide stay distinguishable
            var bars = plot.Add.ErrorBar(xs, ys, s.Points.Select(p => 100 * (p.Accuracy - p.Low)).ToArray());
            bars.YErrorPositive = s.Points.Select(p => 100 * (p.High - p.Accuracy)).ToArray();
            bars.YErrorNegative = s.Points.Select(p => 100 * (p.Accuracy - p.Low)).ToArray();
            bars.Color = color;
        }
        plot.Axes.Bottom.Label.Text = series.All(c => !c.Label.EndsWith(", L2")) ? "L-infinity radius ε" : "radius ε";  // the font has no ℓ
        plot.Axes.Left.Label.Text = "accuracy (%), 95% interval over images";
        plot.Axes.SetLimitsY(0, 100);
        plot.ShowLegend(Alignment.LowerLeft);
        plot.Title(title);
        Plots.SavePng(plot, path, 900, 560);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
