using System.Globalization;
using System.Text;
using System.Text.Json;
using Adp.Data;
using Adp.IO;
using ScottPlot;

namespace Adp.Evaluation;

public sealed record RobustRow(string Attack, string Protocol, bool Defended, double Epsilon, string Rule, IReadOnlyList<double> PerSeed,
    double Mean, double Std, long PooledCorrect, long PooledTotal, double CiLow, double CiHigh, double WorstCase, double Seconds);

/// <summary>Aggregates a finished <see cref="RobustEvaluation"/> into rows, runs the sanity checks, and writes the
/// report folder: results.json, results.csv, report.md, plots and an image grid.</summary>
public sealed class RobustReport
{
    public required RobustConfig Config { get; init; }
    public required string DataDescription { get; init; }
    public required List<RobustRow> Rows { get; init; }
    public required List<string> SanityFindings { get; init; }
    public List<string> SanityNotes { get; init; } = [];
    public required Dictionary<string, string> Environment { get; init; }
    public Dictionary<int, double> StepsCurve { get; init; } = new();
    /// <summary>attack label → (attack iterations → accuracy under mean softmax, pooled over seeds).</summary>
    public Dictionary<string, SortedDictionary<int, double>> IterationsCurves { get; init; } = new();

    public static RobustReport Build(RobustConfig config, RobustEvaluation eval, ImageDataset data, Dictionary<string, string> environment)
    {
        var attacks = config.AllAttacks();
        var rows = new List<RobustRow>();
        for (int a = 0; a < attacks.Count; a++)
        {
            var spec = attacks[a];
            var rules = spec.EvaluatesDefense ? config.Rules.Select(r => r.ToString()).ToList() : [RobustEvaluation.BareRule];
            foreach (var rule in rules)
            {
                var perSeed = new List<double>();
                var worst = new List<double>();
                long correct = 0, total = 0;
                double seconds = 0;
                foreach (var seed in config.Seeds)
                {
                    if (!eval.Cells.TryGetValue(RobustEvaluation.CellKey(a, seed), out var cell) || !cell.Correct.TryGetValue(rule, out var res)) continue;
                    var first = res[0];
                    perSeed.Add(first.Average());
                    correct += first.Sum();
                    total += first.Count;
                    seconds += cell.Seconds;
                    worst.Add(Enumerable.Range(0, first.Count).Average(i => res.All(r => i < r.Count && r[i] == 1) ? 1.0 : 0.0));
                }
                if (perSeed.Count == 0) continue;
                var (mean, std) = Statistics.MeanStd(perSeed);
                var (lo, hi) = Statistics.Wilson(correct, total);
                rows.Add(new RobustRow(spec.Label, spec.Protocol(), spec.EvaluatesDefense, spec.Kind == AttackKind.None ? 0 : spec.Epsilon, rule,
                    perSeed, mean, std, correct, total, lo, hi, worst.Average(), seconds));
            }
        }
        // Pooled over seeds: every cell of the steps-curve attack contributes its images.
        var curve = eval.Cells.Values.SelectMany(c => c.StepsCurve).GroupBy(kv => kv.Key)
            .ToDictionary(g => g.Key, g => g.SelectMany(kv => kv.Value).Average());
        var iterationCurves = new Dictionary<string, SortedDictionary<int, double>>();
        for (int a = 0; a < attacks.Count; a++)
        {
            var cells = config.Seeds.Select(seed => eval.Cells.GetValueOrDefault(RobustEvaluation.CellKey(a, seed))).OfType<CellState>();
            var points = cells.SelectMany(c => c.IterationsCurve).GroupBy(kv => kv.Key)
                .ToDictionary(g => g.Key, g => g.SelectMany(kv => kv.Value).Average());
            if (points.Count > 0) iterationCurves[attacks[a].Label] = new SortedDictionary<int, double>(points);
        }
        var (violations, notes) = Check(rows);
        return new RobustReport
        {
            Config = config, DataDescription = data.Description, Rows = rows, Environment = environment,
            SanityFindings = violations, SanityNotes = notes, StepsCurve = curve, IterationsCurves = iterationCurves,
        };
    }

    /// <summary>The checks a reviewer expects; each violation is one finding (empty when all hold). An ordering
    /// counts as violated when the 95% intervals separate; inversions inside them are <see cref="SanityNotes"/>.</summary>
    public static List<string> Sanity(List<RobustRow> rows) => Check(rows).Violations;

    /// <summary>Attack-strength inversions that lie within the 95% intervals (sampling noise at this image count).</summary>
    public static List<string> Notes(List<RobustRow> rows) => Check(rows).Notes;

    private static (List<string> Violations, List<string> Notes) Check(List<RobustRow> rows)
    {
        var findings = new List<string>();
        var notes = new List<string>();
        // Accuracy does not rise with ε (same target/kind/rule), beyond the 95% interval.
        foreach (var group in rows.Where(r => r.Epsilon > 0).GroupBy(r => (Kind: r.Protocol.Split(' ')[0], Target: r.Protocol.Split(' ')[1], r.Rule)))
        {
            var sorted = group.OrderBy(r => r.Epsilon).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i].CiLow > sorted[i - 1].CiHigh)
                    findings.Add($"accuracy rises with ε: {sorted[i].Attack} ({sorted[i].Mean:P1}) > {sorted[i - 1].Attack} ({sorted[i - 1].Mean:P1}) under {group.Key.Rule}");
        }
        // full-gradient ≤ BPDA ≤ preprocessor-blind at the same ε and rule.
        string[] order = ["Full", "Bpda", "Blind"];
        foreach (var group in rows.Where(r => r.Defended && r.Epsilon > 0).GroupBy(r => (r.Epsilon, r.Rule)))
        {
            RobustRow? Strongest(string target) => group.Where(r => r.Protocol.Split(' ')[1] == target || (target == "Bpda" && r.Protocol.Split(' ')[1].StartsWith("Bpda")))
                .OrderBy(r => r.Mean).FirstOrDefault();
            for (int i = 0; i + 1 < order.Length; i++)
            {
                var (stronger, weaker) = (Strongest(order[i]), Strongest(order[i + 1]));
                if (stronger is null || weaker is null || stronger.Mean <= weaker.Mean + 1e-9) continue;
                var text = $"{order[i]} attack ({stronger.Mean:P1}, 95% {stronger.CiLow:P1}–{stronger.CiHigh:P1}) is weaker than {order[i + 1]} " +
                           $"({weaker.Mean:P1}, 95% {weaker.CiLow:P1}–{weaker.CiHigh:P1}) at ε={group.Key.Epsilon} under {group.Key.Rule}";
                if (stronger.CiLow > weaker.CiHigh) findings.Add(text);
                else notes.Add(text + " — within the 95% intervals");
            }
        }
        // An unbounded attack on the bare classifier reaches about 0%.
        foreach (var r in rows.Where(r => !r.Defended && r.Epsilon >= 1))
            if (r.Mean > 0.01) findings.Add($"unbounded attack '{r.Attack}' leaves the bare classifier at {r.Mean:P1} (expected ≈ 0%)");
        return (findings, notes);
    }

    public void Write(string dir, RobustEvaluation eval)
    {
        Directory.CreateDirectory(dir);
        var json = JsonSerializer.SerializeToUtf8Bytes(new
        {
            config = Config, data = DataDescription, rows = Rows, sanity = SanityFindings, sanityNotes = SanityNotes, stepsCurve = StepsCurve, iterationsCurves = IterationsCurves, environment = Environment,
        }, RobustConfig.Json);
        AtomicFile.Write(Path.Combine(dir, "results.json"), json);

        var csv = new StringBuilder("attack,protocol,defended,epsilon,rule,mean_accuracy,std_over_seeds,seeds,pooled_correct,pooled_total,ci95_low,ci95_high,worst_case_resubmissions,seconds\n");
        foreach (var r in Rows)
            csv.AppendLine(string.Join(",", Quote(r.Attack), Quote(r.Protocol), r.Defended, F(r.Epsilon), r.Rule, F(r.Mean), F(r.Std), r.PerSeed.Count,
                r.PooledCorrect, r.PooledTotal, F(r.CiLow), F(r.CiHigh), F(r.WorstCase), F(r.Seconds)));
        AtomicFile.Write(Path.Combine(dir, "results.csv"), Encoding.UTF8.GetBytes(csv.ToString()));
        AtomicFile.Write(Path.Combine(dir, "report.md"), Encoding.UTF8.GetBytes(Markdown()));
        WritePlots(dir);
        foreach (var (label, (clean, adv, purified)) in eval.Examples)
            PngImages.WriteGrid(Path.Combine(dir, $"examples-{Slug(label)}.png"),
                [Enumerable.Range(0, (int)clean.shape[0]).Select(i => clean[i]).ToList(),
                 Enumerable.Range(0, (int)adv.shape[0]).Select(i => adv[i]).ToList(),
                 Enumerable.Range(0, (int)purified.shape[0]).Select(i => purified[i]).ToList()], 2);
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Robustness evaluation: {Config.Dataset}");
        sb.AppendLine();
        sb.AppendLine($"- Data: {DataDescription}");
        sb.AppendLine($"- Classifier: `{Config.Classifier}`; score model: `{Config.Score}`");
        sb.AppendLine($"- Defense: ADP {Config.Purifier.Describe()}, S = {Config.Runs} runs, resubmissions = {Config.Resubmissions}");
        sb.AppendLine($"- Seeds: {string.Join(", ", Config.Seeds)}; batch {Config.BatchSize}");
        foreach (var (k, v) in Environment) sb.AppendLine($"- {k}: {v}");
        sb.AppendLine();
        sb.AppendLine("| attack | protocol | rule | accuracy (mean ± std over seeds) | 95% interval (pooled) | worst case over resubmissions | time |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in Rows)
            sb.AppendLine($"| {r.Attack} | {r.Protocol} | {r.Rule} | {100 * r.Mean:F1}% ± {100 * r.Std:F1} ({r.PerSeed.Count} seed{(r.PerSeed.Count == 1 ? "" : "s")}) | " +
                          $"{100 * r.CiLow:F1}–{100 * r.CiHigh:F1} ({r.PooledCorrect}/{r.PooledTotal}) | {100 * r.WorstCase:F1}% | {r.Seconds:F0} s |");
        sb.AppendLine();
        if (StepsCurve.Count > 0)
        {
            sb.AppendLine("Accuracy vs purification steps (first defended attack, mean softmax): " +
                          string.Join(", ", StepsCurve.OrderBy(kv => kv.Key).Select(kv => $"T={kv.Key}: {100 * kv.Value:F1}%")));
            sb.AppendLine();
        }
        foreach (var (label, pts) in IterationsCurves)
        {
            sb.AppendLine($"Accuracy vs attack iterations, {label} (mean softmax, one submission): " +
                          string.Join(", ", pts.Select(kv => $"{kv.Key}: {100 * kv.Value:F1}%")));
            sb.AppendLine();
        }
        sb.AppendLine("## Sanity checks");
        if (SanityFindings.Count == 0) sb.AppendLine("All hold: accuracy does not rise with ε; full gradient ≤ BPDA ≤ preprocessor-blind (up to the 95% intervals); unbounded attack on the bare classifier ≈ 0%.");
        else foreach (var f in SanityFindings) sb.AppendLine($"- **VIOLATED**: {f}");
        foreach (var n in SanityNotes) sb.AppendLine($"- note: {n}");
        return sb.ToString();
    }

    private void WritePlots(string dir)
    {
        var byEpsilon = Rows.Where(r => r.Epsilon > 0).GroupBy(r => (Kind: r.Protocol.Split(' ')[0], Target: r.Protocol.Split(' ')[1], r.Rule)).Where(g => g.Count() >= 2)
            .Select(g => ($"{g.Key.Kind} {g.Key.Target} {g.Key.Rule}", g.OrderBy(r => r.Epsilon).Select(r => (r.Epsilon, r.Mean)).ToList())).ToList();
        AccuracyPlot(dir, "accuracy-vs-epsilon.png", "accuracy vs ε", "ε", byEpsilon);
        if (StepsCurve.Count >= 2)
            AccuracyPlot(dir, "accuracy-vs-steps.png", "accuracy vs purification steps", "purification steps T",
                [("", StepsCurve.OrderBy(kv => kv.Key).Select(kv => ((double)kv.Key, kv.Value)).ToList())]);
        var byIterations = IterationsCurves.Where(c => c.Value.Count >= 2)
            .Select(c => (c.Key, c.Value.Select(kv => ((double)kv.Key, kv.Value)).ToList())).ToList();
        AccuracyPlot(dir, "accuracy-vs-iterations.png", "robust accuracy vs attack iterations", "attack iterations", byIterations);
    }

    /// <summary>One accuracy (%) line per series against x; nothing is written without a series.</summary>
    private void AccuracyPlot(string dir, string file, string title, string xLabel, List<(string Label, List<(double X, double Accuracy)> Points)> series)
    {
        if (series.Count == 0) return;
        var plot = new Plot();
        foreach (var (label, pts) in series)
        {
            var sc = plot.Add.Scatter(pts.Select(p => p.X).ToArray(), pts.Select(p => 100 * p.Accuracy).ToArray());
            if (label.Length > 0) sc.LegendText = label;
        }
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.Axes.Left.Label.Text = "accuracy (%)";
        plot.Axes.SetLimitsY(0, 100);
        if (series.Any(s => s.Label.Length > 0)) plot.ShowLegend();
        plot.Title($"{Config.Dataset}: {title}");
        Plots.SavePng(plot, Path.Combine(dir, file), 800, 500);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
    private static string Quote(string s) => "\"" + s.Replace("\"", "\"\"") + "\"";
    public static string Slug(string s) => new(s.Select(c => char.IsLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-').ToArray());
}
