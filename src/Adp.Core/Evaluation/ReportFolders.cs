using System.Text.Json;
using Adp.IO;

namespace Adp.Evaluation;

/// <summary>A report folder written by `adp eval robust`: its configuration, per-image progress and data description.</summary>
public sealed record ReportFolder(string Dir, RobustConfig Config, EvaluationProgress Progress, string DataDescription)
{
    /// <summary>Reads DIR/config.json and DIR/progress.json; throws <see cref="AdpException"/> naming the missing file.</summary>
    public static ReportFolder Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new AdpException($"{dir}: report folder not found");
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new AdpException($"{dir}: no config.json (not a report folder of `adp eval robust`)");
        var config = RobustConfig.Load(configPath);
        var progress = EvaluationProgress.Load(dir) ?? throw new AdpException($"{dir}: no progress.json (nothing was evaluated)");
        string data = progress.Fingerprint.GetValueOrDefault("data split", config.Dataset);
        var results = Path.Combine(dir, "results.json");
        if (File.Exists(results))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(results));
                if (doc.RootElement.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.String) data = d.GetString()!;
            }
            catch (JsonException) { /* the description is informative only */ }
        }
        return new ReportFolder(dir, config, progress, data);
    }

    /// <summary>Rebuilds the report (results.json/csv, report.md, plots) from the stored per-image results, e.g. after a
    /// change of the report's statistics; no model or data is needed.</summary>
    public RobustReport Rewrite(Dictionary<string, string> environment, bool interim = false)
    {
        var report = RobustReport.Build(Config, Progress, DataDescription, environment, interim);
        report.Write(Dir);
        return report;
    }

    /// <summary>
    /// Combines shard folders (same configuration, models and data; shards K/N of one N) into one folder at
    /// <paramref name="outDir"/> with the report of the unsharded evaluation. Refuses, with one line naming the folder
    /// and field, fingerprints that differ, image sets that overlap, and images no shard covers. With
    /// <paramref name="interim"/>, images no folder holds yet (missing or unfinished shards) are allowed: the report is
    /// interim (<see cref="RobustReport.Interim"/>), and `adp eval robust --config OUT/config.json --out OUT` finishes the
    /// evaluation unsharded from there.
    /// </summary>
    public static ReportFolder Merge(IReadOnlyList<string> dirs, string outDir, Dictionary<string, string> environment, bool interim = false)
    {
        if (dirs.Count == 0) throw new AdpException("merge: expected at least one shard folder");
        var passedOver = interim ? NotStarted(dirs) : [];
        var folders = dirs.Where(d => !passedOver.Contains(d)).Select(Load).ToList();
        if (folders.Count == 0) throw new AdpException("merge: none of the folders has evaluated anything yet (no progress.json)");
        var first = folders[0];
        foreach (var f in folders.Skip(1))
        {
            f.Progress.RequireFingerprint(first.Progress.Fingerprint, f.Dir,
                $"it is not a shard of the same evaluation as {first.Dir}; merge only the shard folders of one configuration", "shard");
            var a = Normalize(first.Config);
            var b = Normalize(f.Config);
            if (JsonSerializer.Serialize(a, RobustConfig.Json) != JsonSerializer.Serialize(b, RobustConfig.Json))
                throw new AdpException($"{f.Dir}: its configuration differs from {first.Dir}'s ({FirstDifference(a, b)})");
        }
        var whole = first.Config with { ShardIndex = 0, ShardCount = 1 };
        var merged = new EvaluationProgress { Fingerprint = new(first.Progress.Fingerprint) { ["shard"] = whole.Shard } };
        var wanted = whole.ImageIndices();
        foreach (var spec in whole.AllAttacks())
            foreach (var seed in whole.Seeds)
            {
                var key = EvaluationProgress.CellKey(spec, seed);
                var owner = new Dictionary<int, string>();
                var cell = new CellState { Attack = spec.Label, Protocol = spec.Protocol(), Seed = seed };
                var parts = new List<(int Index, CellState From, int Pos)>();
                foreach (var f in folders)
                {
                    if (!f.Progress.Cells.TryGetValue(key, out var c)) continue;
                    for (int p = 0; p < c.Indices.Count; p++)
                    {
                        if (owner.TryGetValue(c.Indices[p], out var other))
                            throw new AdpException($"{f.Dir}: image {c.Indices[p]} of '{spec.Label}' seed {seed} is also in {other} (shards overlap)");
                        owner[c.Indices[p]] = f.Dir;
                        parts.Add((c.Indices[p], c, p));
                    }
                    cell.Seconds += c.Seconds;
                }
                var missing = wanted.Where(i => !owner.ContainsKey(i)).ToList();
                if (missing.Count > 0 && !interim)
                    throw new AdpException($"merge: {missing.Count} image(s) of '{spec.Label}' seed {seed} are in no shard folder " +
                                           $"(first: {missing[0]}); a shard is missing or unfinished (--interim merges what is there)");
                if (parts.Count == 0) continue;
                var skippedSets = new Dictionary<CellState, HashSet<int>>(ReferenceEqualityComparer.Instance);
                HashSet<int> skippedOf(CellState c) => skippedSets.TryGetValue(c, out var set) ? set : skippedSets[c] = c.Skipped.ToHashSet();
                var brokenSets = new Dictionary<CellState, HashSet<int>>(ReferenceEqualityComparer.Instance);
                HashSet<int> brokenOf(CellState c) => brokenSets.TryGetValue(c, out var set) ? set : brokenSets[c] = c.BrokenEarlier.ToHashSet();
                foreach (var (index, from, pos) in parts.OrderBy(p => p.Index))
                {
                    cell.Indices.Add(index);
                    foreach (var (rule, lists) in from.Correct)
                    {
                        if (!cell.Correct.TryGetValue(rule, out var into)) cell.Correct[rule] = into = [];
                        for (int r = 0; r < lists.Count; r++)
                        {
                            while (into.Count <= r) into.Add([]);
                            into[r].Add(lists[r][pos]);
                        }
                    }
                    if (from.RunsCorrect.Count > pos) cell.RunsCorrect.Add(from.RunsCorrect[pos]);
                    if (skippedOf(from).Contains(index)) cell.Skipped.Add(index);
                    if (brokenOf(from).Contains(index)) cell.BrokenEarlier.Add(index);
                    foreach (var (k, list) in from.IterationsCurve) Add(cell.IterationsCurve, k, list[pos]);
                    foreach (var (t, list) in from.StepsCurve) Add(cell.StepsCurve, t, list[pos]);
                }
                merged.Cells[key] = cell;
                var adv = folders.Select(f => RobustEvaluation.AdversarialPath(f.Dir, spec, seed)).Where(File.Exists).ToList();
                foreach (var path in adv)
                {
                    var (images, indices, labels, meta) = AdversarialSet.Read(path);
                    // Keep the rows' not-attacked marks (eval replay counts those rows as not robust).
                    var marked = AdversarialSet.SkippedIndices(path).Select(i => (int)i).ToHashSet();
                    using (images) using (indices) using (labels)
                        AdversarialSet.Append(RobustEvaluation.AdversarialPath(outDir, spec, seed),
                            indices.data<long>().ToArray().Select(i => (int)i).ToList(), labels, images, meta, marked.Count > 0 ? marked : null);
                }
            }
        Directory.CreateDirectory(outDir);
        merged.Save(outDir);
        AtomicFile.Write(Path.Combine(outDir, "config.json"), JsonSerializer.SerializeToUtf8Bytes(whole, RobustConfig.Json));
        var folder = new ReportFolder(outDir, whole, merged, first.DataDescription.Split(" [shard")[0]);
        var env = new Dictionary<string, string>(environment) { ["merged from"] = string.Join(", ", dirs.Where(d => !passedOver.Contains(d))) };
        if (passedOver.Count > 0) env["passed over (nothing evaluated yet)"] = string.Join(", ", passedOver);
        folder.Rewrite(env, interim);
        return folder;
    }

    /// <summary>The folders an interim merge passes over: not started yet (absent, or no finished batch: no progress.json).</summary>
    public static List<string> NotStarted(IEnumerable<string> dirs) => dirs.Where(d => !File.Exists(EvaluationProgress.PathIn(d))).ToList();

    private static void Add(Dictionary<int, List<int>> curve, int k, int v)
    {
        if (!curve.TryGetValue(k, out var list)) curve[k] = list = [];
        list.Add(v);
    }

    /// <summary>The configuration without what may differ between shards of one evaluation.</summary>
    // An explicit --validation-images 5000 and the default are the same split; the test split has none.
    private static RobustConfig Normalize(RobustConfig c) =>
        c with { ShardIndex = 0, BatchSize = 1, ValidationImages = c.Split == "validation" ? c.ValidationCount : null };

    private static string FirstDifference(RobustConfig a, RobustConfig b)
    {
        using var da = JsonDocument.Parse(JsonSerializer.Serialize(a, RobustConfig.Json));
        using var db = JsonDocument.Parse(JsonSerializer.Serialize(b, RobustConfig.Json));
        // Over the union of both configurations' fields: a field only one of them writes is a difference too.
        var names = da.RootElement.EnumerateObject().Select(p => p.Name)
            .Concat(db.RootElement.EnumerateObject().Select(p => p.Name)).Distinct();
        foreach (var name in names)
        {
            string mine = da.RootElement.TryGetProperty(name, out var p) ? p.GetRawText() : "(absent)";
            string other = db.RootElement.TryGetProperty(name, out var q) ? q.GetRawText() : "(absent)";
            if (mine != other) return $"{name}: {Short(mine)} vs {Short(other)}";
        }
        return "unknown field";
    }

    private static string Short(string s) => s.Length <= 60 ? s.Replace("\n", "").Replace("  ", "") : s[..57].Replace("\n", "") + "…";
}

/// <summary>One line of `adp eval compare`: an attack of one report folder, on the images all folders share.</summary>
public sealed record ComparedAttack(string Folder, string Attack, string Target, double Epsilon, double Accuracy, double AllSeedsAccuracy, int Seeds);

/// <summary>Per-image comparison of the defended attacks of several report folders (e.g. one study per attack kind).</summary>
public sealed record Comparison(List<ComparedAttack> Attacks, int Images, double RobustUnderAll, double CiLow, double CiHigh,
    List<string> OrderingNotes)
{
    /// <summary>
    /// For the images every folder evaluated: each defended attack's accuracy (mean softmax, first submission; averaged
    /// over seeds, and robust-in-every-seed), and the share of images robust under every attack of every folder (an image
    /// counts as robust under an attack only if correct in every seed): the per-image worst case over attacks, which
    /// is what a user facing all these attacks gets. Also lists, per pair of attack kinds at one ε, the images that
    /// the weaker kind (blind &lt; BPDA &lt; full) defeats but the stronger does not.
    /// </summary>
    public static Comparison Run(IReadOnlyList<string> dirs, string rule = "MeanSoftmax")
    {
        var folders = dirs.Select(ReportFolder.Load).ToList();
        if (folders.Select(f => f.Config.Dataset).Distinct().Count() > 1)
            throw new AdpException("compare: the folders evaluate different data sets");
        var perAttack = new List<(ComparedAttack Info, Dictionary<int, bool> RobustAllSeeds)>();
        var meanByAttack = new List<Dictionary<int, double>>();
        foreach (var f in folders)
            foreach (var spec in f.Config.AllAttacks().Where(a => a.EvaluatesDefense && a.Kind != AttackKind.None))
            {
                var cells = f.Config.Seeds.Select(s => f.Progress.Cells.GetValueOrDefault(EvaluationProgress.CellKey(spec, s))).OfType<CellState>().ToList();
                if (cells.Count == 0) continue;
                var robust = new Dictionary<int, bool>();
                var mean = new Dictionary<int, double>();
                foreach (var c in cells)
                {
                    if (!c.Correct.TryGetValue(rule, out var lists)) throw new AdpException($"{f.Dir}: no results for decision rule {rule}");
                    for (int p = 0; p < c.Indices.Count; p++)
                    {
                        int i = c.Indices[p];
                        bool ok = lists[0][p] == 1;
                        robust[i] = robust.GetValueOrDefault(i, true) && ok;
                        mean[i] = mean.GetValueOrDefault(i) + (ok ? 1.0 : 0.0) / cells.Count;
                    }
                }
                perAttack.Add((new ComparedAttack(f.Dir, spec.Label, spec.Target.ToString(), spec.Epsilon, 0, 0, cells.Count), robust));
                meanByAttack.Add(mean);
            }
        if (perAttack.Count == 0) throw new AdpException("compare: no defended attack in these folders");
        var common = perAttack.Select(p => p.RobustAllSeeds.Keys.ToHashSet()).Aggregate((a, b) => { a.IntersectWith(b); return a; })
            .OrderBy(i => i).ToList();
        if (common.Count == 0) throw new AdpException("compare: the folders share no evaluated image");
        var attacks = perAttack.Select((p, k) => p.Info with
        {
            Accuracy = common.Average(i => meanByAttack[k][i]),
            AllSeedsAccuracy = common.Average(i => p.RobustAllSeeds[i] ? 1.0 : 0.0),
        }).ToList();
        int robustAll = common.Count(i => perAttack.All(p => p.RobustAllSeeds[i]));
        var (lo, hi) = Statistics.Wilson(robustAll, common.Count);
        var notes = new List<string>();
        string[] order = ["Blind", "Bpda", "Full"];
        int Rank(string target) => Array.FindIndex(order, o => target.StartsWith(o));
        for (int a = 0; a < perAttack.Count; a++)
            for (int b = 0; b < perAttack.Count; b++)
            {
                var (weak, strong) = (perAttack[a].Info, perAttack[b].Info);
                if (Rank(weak.Target) < 0 || Rank(strong.Target) <= Rank(weak.Target) || weak.Epsilon != strong.Epsilon) continue;
                int n = common.Count(i => !perAttack[a].RobustAllSeeds[i] && perAttack[b].RobustAllSeeds[i]);
                if (n > 0)
                    notes.Add($"{n} image(s) defeated by {weak.Attack} ({weak.Target}) but robust under the stronger {strong.Attack} ({strong.Target})");
            }
        return new Comparison(attacks, common.Count, (double)robustAll / common.Count, lo, hi, notes);
    }
}
