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
/// Robust accuracy against the ℓ∞ radius ε across report folders (issue #12 item 3: where the noise screens the
/// perturbation and where it does not), e.g. the paper preset's and the tuned preset's sweeps in one figure. Each
/// folder's attacked rows are grouped by attack kind and target (bare, preprocessor-blind, BPDA, full gradient) for one
/// decision rule (radii ≥ 1, the unbounded sanity attack, are left out); each curve starts at ε = 0 with the folder's unattacked row for the same target (clean bare or
/// natural defended), so a curve shows what the attack takes from what the defense keeps.
/// </summary>
public static class EpsilonCurves
{
    /// <summary>Curves of one folder's rows (<paramref name="rule"/>: a decision rule name for defended rows; bare rows
    /// always use their own). Only groups with at least one attacked radius appear; points are ordered by ε.</summary>
    public static List<EpsilonSeries> FromRows(string label, IReadOnlyList<RobustRow> rows, string rule)
    {
        bool Wanted(RobustRow r) => r.Defended ? r.Rule == rule : r.Rule == RobustEvaluation.BareRule;
        static EpsilonPoint Point(RobustRow r) => new(r.Epsilon, r.Mean, r.CiLow, r.CiHigh, r.Images, r.PerSeed.Count);
        var natural = rows.Where(r => r.Epsilon == 0 && Wanted(r)).GroupBy(r => r.Defended).ToDictionary(g => g.Key, g => g.First());
        var series = new List<EpsilonSeries>();
        // ε ≥ 1 spans the whole [0, 1] pixel range: the report's unbounded sanity attack, not a threat radius.
        foreach (var g in rows.Where(r => r.Epsilon > 0 && r.Epsilon < 1 && Wanted(r)).GroupBy(r => (Kind(r.Protocol), Target(r.Protocol), r.Defended)))
        {
            var points = g.GroupBy(r => r.Epsilon).Select(e => Point(e.First())).ToList();
            if (natural.TryGetValue(g.Key.Defended, out var n)) points.Add(Point(n));
            series.Add(new EpsilonSeries($"{label}{(label.Length > 0 ? ": " : "")}{TargetName(g.Key.Item2)} {g.Key.Item1}",
                points.OrderBy(p => p.Epsilon).ToList()));
        }
        return series;
    }

    /// <summary>The attack kind (first word of <see cref="AttackSpec.Protocol"/>, e.g. Pgd, Apgd).</summary>
    private static string Kind(string protocol) => protocol.Split(' ')[0].ToUpperInvariant();

    private static string Target(string protocol) => protocol.Split(' ') is { Length: > 1 } p ? p[1] : "";

    private static string TargetName(string target) => target switch
    {
        "Bare" => "bare classifier,",
        "Blind" => "preprocessor-blind",
        "Bpda" => "BPDA+EOT",
        "Full" => "full-gradient",
        _ => target,
    };

    /// <summary>series,epsilon,accuracy,ci95_low,ci95_high,images,seeds — one line per point, invariant culture.</summary>
    public static string Csv(IEnumerable<EpsilonSeries> series)
    {
        var sb = new StringBuilder("series,epsilon,accuracy,ci95_low,ci95_high,images,seeds\n");
        foreach (var s in series)
            foreach (var p in s.Points)
                sb.AppendLine(string.Join(",", "\"" + s.Label.Replace("\"", "\"\"") + "\"", F(p.Epsilon), F(p.Accuracy), F(p.Low), F(p.High),
                    p.Images.ToString(CultureInfo.InvariantCulture), p.Seeds.ToString(CultureInfo.InvariantCulture)));
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
        plot.Axes.Bottom.Label.Text = "L-infinity radius ε";  // the plot font has no ℓ
        plot.Axes.Left.Label.Text = "accuracy (%), 95% interval over images";
        plot.Axes.SetLimitsY(0, 100);
        plot.ShowLegend(Alignment.LowerLeft);
        plot.Title(title);
        Plots.SavePng(plot, path, 900, 560);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
