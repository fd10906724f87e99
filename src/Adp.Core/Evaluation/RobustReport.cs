using System.Globalization;
using System.Text;
using System.Text.Json;
using Adp.Data;
using Adp.IO;
using ScottPlot;

namespace Adp.Evaluation;

/// <summary>One row of a robustness report: an attack under one decision rule, over the configuration's images.</summary>
/// <param name="PerSeed">accuracy per seed (first submission).</param>
/// <param name="Mean">mean over seeds of the accuracy; equals the mean over images of each image's seed-averaged correctness.</param>
/// <param name="Images">images evaluated (the unit of the interval).</param>
/// <param name="CiLow">95% interval over images (see <paramref name="IntervalMethod"/>).</param>
/// <param name="WorstOfResubmissions">share of images correct in every one of R resubmissions of the S-run decision (all
/// seeds pooled); null when R = 1.</param>
/// <param name="PerRunWorst">share of images that every single purification run (S runs × R resubmissions) classified
/// correctly; null for the bare classifier and for results stored before it was recorded.</param>
public sealed record RobustRow(string Attack, string Protocol, bool Defended, double Epsilon, string Rule, IReadOnlyList<double> PerSeed,
    double Mean, double Std, int Images, double CiLow, double CiHigh, string IntervalMethod, double? WorstOfResubmissions, double? PerRunWorst,
    double Seconds);

public enum CheckStatus { Held, Violated, NotRun }

/// <summary>The verdict of one sanity check; <see cref="Detail"/> says what was compared, or why nothing was.</summary>
public sealed record SanityCheck(string Name, CheckStatus Status, string Detail);

/// <summary>Aggregates a <see cref="RobustEvaluation"/>'s per-image results into rows, runs the sanity checks, and
/// writes the report folder: results.json, results.csv, report.md, plots and an image grid.</summary>
public sealed class RobustReport
{
    public required RobustConfig Config { get; init; }
    public required string DataDescription { get; init; }
    public required List<RobustRow> Rows { get; init; }
    public required List<SanityCheck> Checks { get; init; }
    /// <summary>Findings that are not violations: inversions inside the intervals, attacks that cannot be trusted.</summary>
    public List<string> SanityNotes { get; init; } = [];
    public required Dictionary<string, string> Environment { get; init; }
    public Dictionary<string, string> Fingerprint { get; init; } = new();
    public Dictionary<int, double> StepsCurve { get; init; } = new();
    /// <summary>attack label → (attack iterations → accuracy under mean softmax, pooled over seeds).</summary>
    public Dictionary<string, SortedDictionary<int, double>> IterationsCurves { get; init; } = new();
    /// <summary>The evaluation is unfinished (some attack and seed lacks images): the rows cover what was evaluated so far
    /// (<see cref="RobustRow.Images"/>, <see cref="RobustRow.PerSeed"/>), not the configuration's images and seeds.</summary>
    public bool Interim { get; init; }

    public IEnumerable<SanityCheck> Violations => Checks.Where(c => c.Status == CheckStatus.Violated);

    public const string SingleSeedInterval = "Wilson score interval over images";
    public const string BootstrapInterval = "image-level (cluster) bootstrap over images, 2,000 resamples, percentile";

    public static RobustReport Build(RobustConfig config, RobustEvaluation eval, ImageDataset data, Dictionary<string, string> environment) =>
        Build(config, eval.Progress, data.Description, environment);

    /// <summary>
    /// Builds the report of <paramref name="config"/>'s images (its shard) from stored per-image results. A row covers the
    /// seeds whose cell holds every image. With <paramref name="interim"/>, an attack with no such seed still gets its rows,
    /// over the images every started seed holds (else the seed with the most images): the report of an unfinished
    /// evaluation, marked <see cref="Interim"/>, whose rows name how many images they cover.
    /// </summary>
    public static RobustReport Build(RobustConfig config, EvaluationProgress progress, string dataDescription, Dictionary<string, string> environment,
        bool interim = false)
    {
        var attacks = config.AllAttacks();
        var all = config.ImageIndices();
        var rows = new List<RobustRow>();
        var iterationCurves = new Dictionary<string, SortedDictionary<int, double>>();
        var stepsCurve = new Dictionary<int, List<int>>();
        var covered = new Dictionary<AttackSpec, (List<CellState> Cells, List<int> Images)>(ReferenceEqualityComparer.Instance);
        foreach (var spec in attacks)
        {
            var started = config.Seeds.Select(seed => progress.Cells.GetValueOrDefault(EvaluationProgress.CellKey(spec, seed))).OfType<CellState>()
                .Where(c => c.Indices.Count > 0).ToList();
            var held = started.ToDictionary(c => c, c => c.Indices.ToHashSet());   // once per cell (CellState: reference equality)
            var cells = started.Where(c => all.All(held[c].Contains)).ToList();
            var wanted = all;
            if (cells.Count == 0 && interim && started.Count > 0)
            {
                var common = all.Where(i => started.All(c => held[c].Contains(i))).ToList();
                var most = started.MaxBy(c => all.Count(held[c].Contains))!;
                (cells, wanted) = common.Count > 0 ? (started, common) : ([most], all.Where(held[most].Contains).ToList());
            }
            if (cells.Count == 0 || wanted.Count == 0) continue;
            covered[spec] = (cells, wanted);
            var rules = spec.EvaluatesDefense ? config.Rules.Select(r => r.ToString()).ToList() : [RobustEvaluation.BareRule];
            foreach (var rule in rules)
            {
                var perImage = new double[wanted.Count];   // seed-averaged correctness
                var perSeed = new List<double>();
                int allResubmissions = 0, allResubmissionsTotal = 0, allRuns = 0;
                foreach (var cell in cells)
                {
                    var pos = cell.Positions();
                    var res = cell.Correct[rule];
                    var first = wanted.Select(i => res[0][pos[i]]).ToList();
                    perSeed.Add(first.Average());
                    for (int j = 0; j < wanted.Count; j++) perImage[j] += first[j] / (double)cells.Count;
                    allResubmissions += wanted.Count(i => res.All(r => r[pos[i]] == 1));
                    allResubmissionsTotal += wanted.Count;
                    if (cell.RunsCorrect.Count == cell.Indices.Count)
                        allRuns += wanted.Count(i => cell.RunsCorrect[pos[i]] == config.Runs * config.Resubmissions);
                }
                var (mean, std) = Statistics.MeanStd(perSeed);
                var (lo, hi, method) = ImageInterval(perImage, cells.Count, Seed(spec, rule));
                rows.Add(new RobustRow(spec.Label, spec.Protocol(), spec.EvaluatesDefense, spec.Kind == AttackKind.None ? 0 : spec.Epsilon, rule,
                    perSeed, mean, std, wanted.Count, lo, hi, method,
                    spec.EvaluatesDefense && config.Resubmissions > 1 ? (double)allResubmissions / allResubmissionsTotal : null,
                    spec.EvaluatesDefense && cells.All(c => c.RunsCorrect.Count == c.Indices.Count) ? (double)allRuns / allResubmissionsTotal : null,
                    cells.Sum(c => c.Seconds)));
            }
            var points = new SortedDictionary<int, double>();
            foreach (var k in cells.SelectMany(c => c.IterationsCurve.Keys).Distinct())
                points[k] = cells.SelectMany(c => { var pos = c.Positions(); return wanted.Select(i => c.IterationsCurve[k][pos[i]]); }).Average();
            if (points.Count > 0) iterationCurves[spec.Label] = points;
            foreach (var c in cells)
            {
                var pos = c.Positions();
                foreach (var (t, list) in c.StepsCurve)
                {
                    if (!stepsCurve.TryGetValue(t, out var acc)) stepsCurve[t] = acc = [];
                    acc.AddRange(wanted.Select(i => list[pos[i]]));
                }
            }
        }
        bool isInterim = interim && !progress.Covers(config);
        var (checks, notes) = Check(rows, attacks);
        if (isInterim)
        {
            // Rows of an interim report may cover different images and seeds: a comparison between them is no verdict.
            checks = checks.Select(c => c.Status == CheckStatus.Violated
                ? c with { Status = CheckStatus.NotRun, Detail = "interim report, rows over different images: " + c.Detail } : c).ToList();
        }
        // (image-seed pairs of the attack's row, how many of them a cell's index list names), or null when it has no row.
        (int Pairs, int Listed)? Count(AttackSpec spec, Func<CellState, List<int>> list) =>
            covered.TryGetValue(spec, out var cov)
                ? (cov.Images.Count * cov.Cells.Count, cov.Cells.Sum(c => { var set = list(c).ToHashSet(); return cov.Images.Count(set.Contains); }))
                : null;
        foreach (var spec in attacks.Where(a => a.SkipMisclassified))
            if (Count(spec, c => c.Skipped) is (var pairs, var skipped))
                notes.Add($"'{spec.Label}' attacked only the images classified correctly on clean input ({(spec.EvaluatesDefense ? $"the defense, S = {config.Runs}, under at least one rule" : "the bare classifier")}); " +
                          $"{skipped} of {pairs} image-seed pairs were misclassified and count as not robust (AutoAttack's convention)");
        foreach (var spec in attacks.Where(a => a.AfterSpec is not null))
            if (Count(spec, c => c.BrokenEarlier) is (var pairs, var broken))
                notes.Add($"'{spec.Label}' ran after '{spec.After}' (AutoAttack's cascade): {broken} of {pairs} image-seed " +
                          $"pairs were broken by '{spec.After}' and not attacked again (they keep its outcomes); every other outcome is the worst case of both");
        return new RobustReport
        {
            Config = config, DataDescription = dataDescription, Rows = rows, Environment = environment, Fingerprint = progress.Fingerprint,
            Checks = checks, SanityNotes = notes, StepsCurve = stepsCurve.ToDictionary(kv => kv.Key, kv => kv.Value.Average()),
            IterationsCurves = iterationCurves, Interim = isInterim,
        };
    }

    private static long Seed(AttackSpec spec, string rule) => (long)Adp.Training.Seeds.Mix(spec.Id(), rule.Length, rule[0]);

    /// <summary>Fewest EOT draws per gradient below which an attack on the randomized defense gets a note.</summary>
    public const int RecommendedEot = 10;

    /// <summary>95% interval of a mean accuracy with the images as the unit. One seed: the per-image outcomes are
    /// independent Bernoulli trials, so the Wilson interval over images. Several seeds on the same images: the seeds of
    /// one image are correlated (the image decides most of it), so the images are resampled as clusters (bootstrap of
    /// the per-image seed averages, percentile); where every image has the same average (0% or 100%), where the bootstrap
    /// degenerates, the Wilson interval over images at the observed mean.</summary>
    public static (double Low, double High, string Method) ImageInterval(IReadOnlyList<double> perImage, int seeds, long seed = 0)
    {
        int n = perImage.Count;
        double mean = perImage.Average();
        var wilson = Statistics.Wilson((long)Math.Round(mean * n), n);
        if (seeds <= 1 || perImage.All(v => v == perImage[0])) return (wilson.Low, wilson.High, SingleSeedInterval);
        var (lo, hi) = Statistics.ClusterBootstrap(perImage, 2000, seed);
        return (lo, hi, BootstrapInterval);
    }

    /// <summary>The checks a reviewer expects, each held, violated or not run (with the reason). An ordering counts as
    /// violated when the 95% intervals separate; inversions inside them are notes.</summary>
    public static (List<SanityCheck> Checks, List<string> Notes) Check(List<RobustRow> rows, IReadOnlyList<AttackSpec>? attacks = null)
    {
        var checks = new List<SanityCheck>();
        var notes = new List<string>();
        static string Target(RobustRow r) => r.Protocol.Split(' ') is { Length: > 1 } p ? p[1] : "";

        // Accuracy does not rise with ε (same target, kind and rule), beyond the 95% interval.
        var sweeps = rows.Where(r => r.Epsilon > 0 && r.Epsilon < 1).GroupBy(r => (Kind: r.Protocol.Split(' ')[0], Target: Target(r), r.Rule))
            .Where(g => g.Select(r => r.Epsilon).Distinct().Count() >= 2).ToList();
        if (sweeps.Count == 0)
            checks.Add(new("accuracy falls as ε grows", CheckStatus.NotRun, "no attack was run at two or more ε with the same kind, target and rule"));
        else
        {
            var found = new List<string>();
            foreach (var group in sweeps)
            {
                var sorted = group.OrderBy(r => r.Epsilon).ToList();
                for (int i = 1; i < sorted.Count; i++)
                    if (sorted[i].CiLow > sorted[i - 1].CiHigh)
                        found.Add($"{sorted[i].Attack} ({sorted[i].Mean:P1}) > {sorted[i - 1].Attack} ({sorted[i - 1].Mean:P1}) under {group.Key.Rule}");
            }
            checks.Add(found.Count == 0
                ? new("accuracy falls as ε grows", CheckStatus.Held, $"{sweeps.Count} ε sweep(s) compared")
                : new("accuracy falls as ε grows", CheckStatus.Violated, "accuracy rises with ε: " + string.Join("; ", found)));
        }

        // full-gradient ≤ BPDA ≤ preprocessor-blind at the same ε and rule.
        string[] order = ["Full", "Bpda", "Blind"];
        var compared = new List<string>();
        var violated = new List<string>();
        foreach (var group in rows.Where(r => r.Defended && r.Epsilon > 0).GroupBy(r => (r.Epsilon, r.Rule)))
        {
            RobustRow? Strongest(string target) => group.Where(r => Target(r) == target || (target == "Bpda" && Target(r).StartsWith("Bpda")))
                .OrderBy(r => r.Mean).FirstOrDefault();
            for (int i = 0; i + 1 < order.Length; i++)
                for (int j = i + 1; j < order.Length; j++)
                {
                    var (stronger, weaker) = (Strongest(order[i]), Strongest(order[j]));
                    if (stronger is null || weaker is null) continue;
                    if (j == i + 2 && Strongest(order[i + 1]) is not null) continue;  // compared through the middle one
                    compared.Add($"{order[i]} vs {order[j]} at ε={group.Key.Epsilon} ({group.Key.Rule})");
                    if (stronger.Mean <= weaker.Mean + 1e-9) continue;
                    var text = $"{order[i]} attack ({stronger.Mean:P1}, 95% {stronger.CiLow:P1}–{stronger.CiHigh:P1}) is weaker than {order[j]} " +
                               $"({weaker.Mean:P1}, 95% {weaker.CiLow:P1}–{weaker.CiHigh:P1}) at ε={group.Key.Epsilon} under {group.Key.Rule}";
                    if (stronger.CiLow > weaker.CiHigh) violated.Add(text);
                    else notes.Add(text + " — within the 95% intervals");
                }
        }
        checks.Add(compared.Count == 0
            ? new("full gradient ≤ BPDA ≤ preprocessor-blind", CheckStatus.NotRun,
                "no two of these attack kinds were run at the same ε in this report (`adp eval compare` checks across reports)")
            : violated.Count == 0
                ? new("full gradient ≤ BPDA ≤ preprocessor-blind", CheckStatus.Held, $"{compared.Count} pair(s) compared")
                : new("full gradient ≤ BPDA ≤ preprocessor-blind", CheckStatus.Violated, string.Join("; ", violated)));

        // An unbounded attack on the bare classifier reaches about 0%.
        var unbounded = rows.Where(r => !r.Defended && r.Epsilon >= 1).ToList();
        checks.Add(unbounded.Count == 0
            ? new("unbounded attack on the bare classifier ≈ 0%", CheckStatus.NotRun, "no unbounded attack in this report")
            : unbounded.FirstOrDefault(r => r.Mean > 0.01) is { } bad
                ? new("unbounded attack on the bare classifier ≈ 0%", CheckStatus.Violated,
                    $"unbounded attack '{bad.Attack}' leaves the bare classifier at {bad.Mean:P1} (expected ≈ 0%)")
                : new("unbounded attack on the bare classifier ≈ 0%", CheckStatus.Held, string.Join(", ", unbounded.Select(r => $"{r.Attack}: {r.Mean:P1}"))));

        // A randomized defense attacked through its noise with too few EOT draws: the gradient follows one or a few noise
        // draws (AutoAttack flags randomized models the same way).
        foreach (var a in attacks ?? [])
            if (a.Kind != AttackKind.None && a.IsRandomizedTarget && a.Eot < RecommendedEot)
                notes.Add($"'{a.Label}' attacks the randomized defense with EOT = {a.Eot}: its gradient " +
                          (a.Eot == 1 ? "follows a single noise draw" : $"averages only {a.Eot} noise draws") +
                          $", so it underestimates the attack and the robust accuracy is likely overstated (use EOT ≥ {RecommendedEot})");
        return (checks, notes);
    }

    /// <summary>Violations of <see cref="Check"/>, one line each (empty when none).</summary>
    public static List<string> Sanity(List<RobustRow> rows) => Check(rows).Checks.Where(c => c.Status == CheckStatus.Violated).Select(c => c.Detail).ToList();

    /// <summary>Inversions inside the intervals and other notes of <see cref="Check"/>.</summary>
    public static List<string> Notes(List<RobustRow> rows) => Check(rows).Notes;

    /// <summary>Writes results.json, results.csv, report.md, plots and example grids into <paramref name="dir"/>. An
    /// <see cref="Interim"/> report writes interim-results.json and interim-results.csv instead: results.json marks a
    /// finished evaluation (job queues and readers rely on it), so it is written last, and a final report removes the interim files.</summary>
    public void Write(string dir, RobustEvaluation? eval = null)
    {
        Directory.CreateDirectory(dir);
        string resultsJson = Interim ? "interim-results.json" : "results.json", resultsCsv = Interim ? "interim-results.csv" : "results.csv";
        if (!Interim)
            foreach (var stale in new[] { "interim-results.json", "interim-results.csv" }) File.Delete(Path.Combine(dir, stale));
        var json = JsonSerializer.SerializeToUtf8Bytes(new
        {
            config = Config, data = DataDescription, interim = Interim, fingerprint = Fingerprint, rows = Rows, sanity = Checks, sanityNotes = SanityNotes,
            stepsCurve = StepsCurve, iterationsCurves = IterationsCurves, environment = Environment,
        }, RobustConfig.Json);

        var csv = new StringBuilder("attack,protocol,defended,epsilon,rule,mean_accuracy,std_over_seeds,seeds,images,ci95_low,ci95_high,ci95_method," +
                                    "worst_of_resubmissions,per_run_worst,seconds\n");
        foreach (var r in Rows)
            csv.AppendLine(string.Join(",", Quote(r.Attack), Quote(r.Protocol), r.Defended, F(r.Epsilon), r.Rule, F(r.Mean), F(r.Std), r.PerSeed.Count,
                r.Images, F(r.CiLow), F(r.CiHigh), Quote(r.IntervalMethod), r.WorstOfResubmissions is { } w ? F(w) : "",
                r.PerRunWorst is { } p ? F(p) : "", F(r.Seconds)));
        AtomicFile.Write(Path.Combine(dir, resultsCsv), Encoding.UTF8.GetBytes(csv.ToString()));
        AtomicFile.Write(Path.Combine(dir, "report.md"), Encoding.UTF8.GetBytes(Markdown()));
        WritePlots(dir);
        foreach (var (label, (clean, adv, purified)) in eval?.Examples ?? [])
            PngImages.WriteGrid(Path.Combine(dir, $"examples-{Slug(label)}.png"),
                [Enumerable.Range(0, (int)clean.shape[0]).Select(i => clean[i]).ToList(),
                 Enumerable.Range(0, (int)adv.shape[0]).Select(i => adv[i]).ToList(),
                 Enumerable.Range(0, (int)purified.shape[0]).Select(i => purified[i]).ToList()], 2);
        // Last: results.json marks a finished folder (carry/queue.sh, scripts), so it must not precede the rest of the report.
        AtomicFile.Write(Path.Combine(dir, resultsJson), json);
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Robustness evaluation: {Config.Dataset}");
        sb.AppendLine();
        sb.AppendLine($"- Data: {DataDescription}{(Config.ShardCount > 1 ? $"; shard {Config.Shard} (images i with i mod {Config.ShardCount} = {Config.ShardIndex})" : "")}");
        if (Interim)
            sb.AppendLine($"- **Interim, not a result**: the evaluation is unfinished; each row covers the images and seeds evaluated so far " +
                          $"(its images column), not all {Config.ImageIndices().Count} images and seeds {string.Join(", ", Config.Seeds)}");
        sb.AppendLine($"- Classifier: `{Config.Classifier}`; score model: `{Config.Score}`");
        sb.AppendLine($"- Defense: {Config.DescribePurifier()}, S = {Config.Runs} runs, resubmissions R = {Config.Resubmissions}");
        sb.AppendLine($"- Seeds: {string.Join(", ", Config.Seeds)}; every random draw for image i comes from a stream keyed by (seed, i, attack, " +
                      "purpose), so results do not depend on batch size or sharding");
        foreach (var (k, v) in Environment) sb.AppendLine($"- {k}: {v}");
        sb.AppendLine();
        sb.AppendLine("| attack | protocol | rule | accuracy (mean ± std over seeds) | 95% interval over images | worst of R resubmissions | per-run worst case | time |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in Rows)
            sb.AppendLine($"| {r.Attack} | {r.Protocol} | {r.Rule} | {100 * r.Mean:F1}% ± {100 * r.Std:F1} ({r.PerSeed.Count} seed{(r.PerSeed.Count == 1 ? "" : "s")}) | " +
                          $"{100 * r.CiLow:F1}–{100 * r.CiHigh:F1} ({r.Images} images{(r.IntervalMethod == BootstrapInterval ? ", bootstrap" : "")}) | " +
                          $"{(r.WorstOfResubmissions is { } w ? $"{100 * w:F1}%" : "–")} | {(r.PerRunWorst is { } p ? $"{100 * p:F1}%" : "–")} | {r.Seconds:F0} s |");
        sb.AppendLine();
        sb.AppendLine("Accuracy is that of the first submission, averaged over seeds. The 95% interval takes the images as the unit: " +
                      $"with one seed the {SingleSeedInterval}; with several seeds on the same images an {BootstrapInterval} of the " +
                      "per-image seed averages (seeds of one image are not independent trials). *Worst of R resubmissions*: an image counts " +
                      "as robust only if the S-run decision is correct in every one of R resubmissions of the same adversarial input (all " +
                      "seeds pooled; – where R = 1). *Per-run worst case*: robust only if every single purification run (S × R of them) " +
                      "classifies it correctly, the per-evaluation worst case of the literature.");
        sb.AppendLine();
        if (StepsCurve.Count > 0)
        {
            sb.AppendLine("Accuracy vs purification steps (first defended attack, mean softmax): " +
                          string.Join(", ", StepsCurve.OrderBy(kv => kv.Key).Select(kv => $"T={kv.Key}: {100 * kv.Value:F1}%")));
            sb.AppendLine();
        }
        foreach (var (label, pts) in IterationsCurves)
        {
            sb.AppendLine($"Accuracy vs attack iterations, {label} (mean softmax, one submission; PGD: the k-th iterate, APGD: its best point after k): " +
                          string.Join(", ", pts.Select(kv => $"{kv.Key}: {100 * kv.Value:F1}%")));
            sb.AppendLine();
        }
        sb.AppendLine("## Sanity checks");
        foreach (var c in Checks)
            sb.AppendLine($"- {c.Name}: **{(c.Status switch { CheckStatus.Held => "held", CheckStatus.Violated => "VIOLATED", _ => "not run" })}** — {c.Detail}");
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
