using System.CommandLine;
using Adp.Data;
using Adp.Evaluation;
using Adp.Purification;
using Spectre.Console;
using static TorchSharp.torch;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    /// <summary>`adp eval report DIR…`: rebuilds report folders from their stored per-image results.</summary>
    private static Command CreateReport()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "report folders of `adp eval robust`", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("report", "Rebuild a report folder (tables, intervals, sanity checks, plots) from its progress.json; no models needed. " +
                                        "An unfinished folder gets an interim report on the terminal only (its files are left as they are)");
        cmd.Arguments.Add(dirs);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            foreach (var dir in parse.GetValue(dirs)!)
            {
                var folder = ReportFolder.Load(dir);
                var env = new Dictionary<string, string> { ["report rebuilt with adp version"] = IO.Checkpoint.ToolkitVersion };
                // An unfinished folder may be a running job's: writing results.json there would mark it finished.
                bool finished = folder.Progress.Covers(folder.Config);
                var report = finished ? folder.Rewrite(env)
                    : RobustReport.Build(folder.Config, folder.Progress, folder.DataDescription, env, interim: true);
                AnsiConsole.MarkupLine(Markup.Escape($"{dir}: {folder.DataDescription}"));
                if (!finished)
                    AnsiConsole.MarkupLine(Markup.Escape($"{dir}: unfinished — an interim report (each row over the images and seeds evaluated so far), " +
                                                         $"nothing written; `adp eval robust --config {Path.Combine(dir, "config.json")} --out {dir}` resumes it"));
                PrintReport(report, $"S={folder.Config.Runs}, {folder.Config.Resubmissions} resubmission(s), seeds {string.Join(",", folder.Config.Seeds)}");
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>`adp eval merge DIR… --out DIR`: shard folders into one report.</summary>
    private static Command CreateMerge()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "shard folders (`adp eval robust --shard K/N`)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "folder for the merged report", Required = true };
        var interim = new Option<bool>("--interim")
        {
            Description = "merge shards that are missing or unfinished too: an interim report over the images evaluated so far " +
                          "(`adp eval robust --config OUT/config.json --out OUT` finishes it unsharded)",
        };
        var cmd = new Command("merge", "Merge the shard folders of one evaluation into one report; refuses other configurations, overlaps and gaps");
        cmd.Arguments.Add(dirs);
        cmd.Options.Add(output);
        cmd.Options.Add(interim);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var outDir = parse.GetValue(output)!;
            if (File.Exists(EvaluationProgress.PathIn(outDir)))
                throw new AdpException($"--out {outDir}: already holds a report; choose an empty folder");
            bool partial = parse.GetValue(interim);
            var merged = ReportFolder.Merge(parse.GetValue(dirs)!, outDir, new Dictionary<string, string> { ["adp version"] = IO.Checkpoint.ToolkitVersion },
                partial);
            var report = RobustReport.Build(merged.Config, merged.Progress, merged.DataDescription, new(), partial);
            var passedOver = partial ? ReportFolder.NotStarted(parse.GetValue(dirs)!) : [];
            PrintReport(report, $"merged {parse.GetValue(dirs)!.Length - passedOver.Count} shard folders → {outDir}" +
                                (report.Interim ? " (interim: each row over the images evaluated so far; not a result)" : "") +
                                (passedOver.Count > 0 ? $"; passed over, nothing evaluated yet: {string.Join(", ", passedOver)}" : ""));
            return 0;
        }));
        return cmd;
    }

    /// <summary>`adp eval compare DIR…`: the attack ordering per image across report folders.</summary>
    private static Command CreateCompare()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "report folders to compare (e.g. one per attack kind)", Arity = ArgumentArity.OneOrMore };
        var rule = new Option<DecisionRule>("--rule") { DefaultValueFactory = _ => DecisionRule.MeanSoftmax };
        var cmd = new Command("compare", "Per-image comparison of defended attacks across report folders: robust under every attack, ordering");
        cmd.Arguments.Add(dirs);
        cmd.Options.Add(rule);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var c = Comparison.Run(parse.GetValue(dirs)!, parse.GetValue(rule).ToString());
            var t = new Table().AddColumns("folder", "attack", "target", "ε", "seeds", "accuracy (mean over seeds)", "robust in every seed");
            foreach (var a in c.Attacks)
                t.AddRow(Markup.Escape(a.Folder), Markup.Escape(a.Attack), a.Target, $"{a.Epsilon:G4}", a.Seeds.ToString(),
                    $"{100 * a.Accuracy:F1}%", $"{100 * a.AllSeedsAccuracy:F1}%");
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLine(Markup.Escape($"robust under every attack above (per image, every seed): {100 * c.RobustUnderAll:F1}% " +
                                                 $"(95% Wilson interval over {c.Images} images {100 * c.CiLow:F1}–{100 * c.CiHigh:F1})"));
            foreach (var n in c.OrderingNotes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
            return 0;
        }));
        return cmd;
    }

    /// <summary>`adp eval epsilon-plot DIR[=LABEL]… --out FILE.png`: robust accuracy against ε across report folders.</summary>
    private static Command CreateEpsilonPlot()
    {
        var dirs = new Argument<string[]>("dirs")
        {
            Description = "report folders of `adp eval robust`, each optionally DIR=LABEL (the label names its curves; default: the folder name)",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = new Option<string>("--out") { Description = "PNG file; the points also go to the same name with .csv", Required = true };
        var rule = new Option<DecisionRule>("--rule") { Description = "decision rule of the defended rows", DefaultValueFactory = _ => DecisionRule.MeanSoftmax };
        var title = new Option<string?>("--title") { Description = "plot title (default: the data set)" };
        var cmd = new Command("epsilon-plot", "Robust accuracy against the ℓ∞ radius ε, one curve per folder and attack target, with 95% intervals (PNG + CSV)");
        cmd.Arguments.Add(dirs);
        foreach (var o in new Option[] { output, rule, title }) cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var outPath = parse.GetValue(output)!;
            if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new AdpException($"--out: expected a .png file, got '{outPath}'");
            var series = new List<EpsilonSeries>();
            var datasets = new HashSet<string>();
            foreach (var arg in parse.GetValue(dirs)!)
            {
                // DIR=LABEL, split at the last '=' unless the whole argument is a folder (paths may hold '=').
                int eq = arg.LastIndexOf('=');
                var (dir, label) = eq > 0 && !Directory.Exists(arg) ? (arg[..eq], arg[(eq + 1)..])
                    : (arg, Path.GetFileName(Path.TrimEndingDirectorySeparator(arg)));
                var folder = ReportFolder.Load(dir);
                datasets.Add(folder.Config.Dataset);
                var ruleName = parse.GetValue(rule);
                if (!folder.Config.Rules.Contains(ruleName))
                    throw new AdpException($"--rule: {dir} was evaluated with {string.Join(", ", folder.Config.Rules)}, not {ruleName}");
                var report = RobustReport.Build(folder.Config, folder.Progress, folder.DataDescription, new());
                var curves = EpsilonCurves.FromRows(label, report.Rows, ruleName.ToString());
                if (curves.Count > 0 && !report.Rows.Any(EpsilonCurves.IsUnattacked))
                    AnsiConsole.MarkupLine(Markup.Escape($"note: {dir} has no unattacked row, so its curves start at their smallest ε"));
                series.AddRange(curves);
            }
            if (datasets.Count > 1) throw new AdpException($"epsilon-plot: the folders evaluate different data sets ({string.Join(", ", datasets)})");
            EpsilonCurves.Plot(series, outPath, parse.GetValue(title) ?? $"{datasets.Single()}: accuracy vs ε");
            var csvPath = Path.ChangeExtension(outPath, ".csv");
            IO.AtomicFile.Write(csvPath, System.Text.Encoding.UTF8.GetBytes(EpsilonCurves.Csv(series)));
            var t = new Table().AddColumns("curve", "ε", "accuracy", "95% interval", "images × seeds");
            foreach (var s in series)
                foreach (var p in s.Points)
                    t.AddRow(Markup.Escape(s.Label), $"{p.Epsilon:G4}", $"{100 * p.Accuracy:F1}%", $"{100 * p.Low:F1}–{100 * p.High:F1}", $"{p.Images} × {p.Seeds}");
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {outPath} and {csvPath}"));
            return 0;
        }));
        return cmd;
    }

    /// <summary>`adp eval replay --adv FILE …`: re-evaluates saved adversarial examples with another defense or seeds.</summary>
    private static Command CreateReplay()
    {
        var adv = new Option<string>("--adv") { Description = "adversarial examples saved by `adp eval robust` (REPORT/adv/*.safetensors)", Required = true };
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var score = new Option<string?>("--score") { Description = "score-model checkpoint (omit with --bare)" };
        var bare = new Option<bool>("--bare") { Description = "evaluate the bare classifier instead of the defense" };
        var runs = new Option<int>("--runs") { Description = "purification runs S", DefaultValueFactory = _ => 10 };
        var seeds = new Option<string>("--seeds") { Description = "comma-separated seeds of the purification noise", DefaultValueFactory = _ => "0" };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 32 };
        var purifier = new PurifierOptions();
        var cmd = new Command("replay", "Re-evaluate saved adversarial examples (bare, or with the ADP defense or a variant (--purifier) at any settings and seeds)");
        foreach (var o in new Option[] { adv, classifier, score, bare, runs, seeds, batch }) cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (images, indices, labels, meta) = AdversarialSet.Read(parse.GetValue(adv)!);
            var seedList = ParseList(parse.GetValue(seeds)!, "--seeds", long.Parse);
            if (seedList.Distinct().Count() != seedList.Count) throw new AdpException("--seeds: repeated seeds");
            int n = (int)indices.shape[0], bs = parse.GetValue(batch);
            if (bs < 1) throw new AdpException($"--batch-size: expected at least 1, got {bs}");
            var (clf, cinfo) = Models.ClassifierFile.Load(parse.GetValue(classifier)!, device);
            if (cinfo.Config.Channels != images.shape[1] || cinfo.Config.ImageSize != images.shape[2])
                throw new AdpException($"{cinfo.Path}: classifier takes {cinfo.Config.Channels}×{cinfo.Config.ImageSize}² images; the file holds " +
                                       $"{images.shape[1]}×{images.shape[2]}×{images.shape[3]}");
            var idx = indices.data<long>().ToArray();
            // Images an attack skipped (misclassified on clean input, stored clean; or, in a cascade, broken by the earlier attack,
            // stored with its example) count as not robust.
            var skipped = AdversarialSet.SkippedIndices(parse.GetValue(adv)!);
            var rules = new[] { DecisionRule.MeanSoftmax, DecisionRule.LogitSum, DecisionRule.MajorityVote };
            var correct = new Dictionary<string, double[]>();
            string description = "", evaluated = "bare";
            if (parse.GetValue(bare))
            {
                if (purifier.FirstGiven(parse) is { } given) throw new AdpException($"{given.Name}: --bare evaluates the classifier alone (no purifier)");
                using var _ = no_grad();
                correct["Bare"] = new double[n];
                for (int s = 0; s < n; s += bs)
                {
                    using var scope = NewDisposeScope();
                    int m = Math.Min(bs, n - s);
                    var ok = clf.forward(images.narrow(0, s, m).to(device)).argmax(1).cpu().eq(labels.narrow(0, s, m));
                    var v = ok.to(ScalarType.Float64).data<double>().ToArray();
                    Array.Copy(v, 0, correct["Bare"], s, m);
                }
            }
            else
            {
                var scorePath = parse.GetValue(score) ?? throw new AdpException("--score is required (or --bare)");
                var (net, sinfo) = Models.ScoreModelFile.Load(scorePath, null, device);
                var variant = purifier.ReadVariant(parse, sinfo.Metadata);
                var purifierBuilt = variant.Create(net, purifier.Read(parse, sinfo.Metadata));
                description = purifierBuilt.Describe();
                evaluated = variant.Label;
                var defense = new DefendedClassifier(clf, purifierBuilt, parse.GetValue(runs));
                foreach (var rule in rules) correct[rule.ToString()] = new double[n];
                foreach (var seed in seedList)
                    for (int s = 0; s < n; s += bs)
                    {
                        using var scope = NewDisposeScope();
                        int m = Math.Min(bs, n - s);
                        using var o = defense.Classify(images.narrow(0, s, m).to(device), PerImageSource.For(seed, idx.Skip(s).Take(m), 0x7e91a7));
                        foreach (var rule in rules)
                        {
                            var v = o.Predict(rule).cpu().eq(labels.narrow(0, s, m)).to(ScalarType.Float64).data<double>().ToArray();
                            for (int j = 0; j < m; j++) correct[rule.ToString()][s + j] += v[j] / seedList.Count;
                        }
                    }
            }
            foreach (var perImage in correct.Values)
                for (int j = 0; j < n; j++) if (skipped.Contains(idx[j])) perImage[j] = 0;
            if (skipped.Count > 0)
                AnsiConsole.MarkupLine(Markup.Escape($"{skipped.Count} of {n} images were not attacked (misclassified on clean input when the attack " +
                                                     "ran, stored clean; or, in a cascade, broken by the earlier attack, stored with its example): " +
                                                     "counted as not robust"));
            AnsiConsole.MarkupLine(Markup.Escape($"{parse.GetValue(adv)}: {n} images; attack {meta.GetValueOrDefault("attack", "?")}: " +
                                                 $"{meta.GetValueOrDefault("protocol", "?")}, seed {meta.GetValueOrDefault("seed", "?")}; " +
                                                 $"computed against {meta.GetValueOrDefault("target", "?")}"));
            var t = new Table().AddColumns("evaluated", "rule", "accuracy", "95% interval over images");
            foreach (var (rule, perImage) in correct)
            {
                var (lo, hi, _) = RobustReport.ImageInterval(perImage, parse.GetValue(bare) ? 1 : seedList.Count);
                t.AddRow(evaluated, rule, $"{100 * perImage.Average():F1}%", $"{100 * lo:F1}–{100 * hi:F1}");
            }
            AnsiConsole.Write(t);
            if (!parse.GetValue(bare))
                AnsiConsole.MarkupLine(Markup.Escape($"  {description}, S={parse.GetValue(runs)}, seeds {string.Join(",", seedList)}"));
            return 0;
        }));
        return cmd;
    }
}

public static partial class EvalCommands
{
    /// <summary>The transfer-attack option of `eval snapshots` and `eval tune`.</summary>
    private static Option<string?> TransferAttackOption() => new("--attack")
    {
        Description = "the transfer attack (key=value, target bare); default: PGD-40 at the data set's ε (MNIST 0.3, Fashion-MNIST 0.1, CIFAR-10 8/255)",
    };

    /// <summary>The transfer attack of `eval snapshots` and `eval tune`: <paramref name="text"/> parsed with target bare, else
    /// PGD-40 at the data set's usual ε (step ε/4, random start).</summary>
    private static AttackSpec TransferAttack(DatasetSpec spec, string? text)
    {
        double eps = spec.Name switch { "mnist" => 0.3, "fashion-mnist" => 0.1, _ => 8.0 / 255 };
        var transfer = text is not null ? ParseAttack(text) with { Target = AttackTarget.Bare }
            : new AttackSpec { Name = "PGD-40", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Epsilon = eps, Iterations = 40 };
        transfer.Validate();
        return transfer;
    }

    /// <summary>`adp eval snapshots SNAPSHOT… --classifier C --out DIR`: score-model snapshots against training iterations.</summary>
    private static Command CreateSnapshots()
    {
        var files = new Argument<string[]>("snapshots") { Description = "score-model checkpoints (e.g. train score --keep-every snapshots)", Arity = ArgumentArity.OneOrMore };
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var images = new Option<int>("--images") { Description = "first N images of the split", DefaultValueFactory = _ => 256 };
        var split = CliSupport.SplitOption();
        split.DefaultValueFactory = _ => "validation";
        var sigmas = new Option<string>("--denoise-sigmas") { Description = "σ values for the one-shot denoising gain", DefaultValueFactory = _ => "0.1,0.25,0.5" };
        var weights = new Option<string>("--weights") { Description = "Model, Ema or both", DefaultValueFactory = _ => "both" };
        var runs = new Option<int>("--runs") { Description = "purification runs S (0: the denoising gain only)", DefaultValueFactory = _ => 4 };
        var attack = TransferAttackOption();
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out")
        {
            Description = "folder for curve.csv, the two plots and snapshots.json (a rerun measures only snapshots not stored there)", Required = true,
        };
        var purifier = new PurifierOptions();
        var cmd = new Command("snapshots", "Denoising gain and defended natural / transfer-attack accuracy of score-model snapshots (validation split)");
        cmd.Arguments.Add(files);
        var validationImages = CliSupport.ValidationImagesOption();
        foreach (var o in new Option[] { classifier, images, split, validationImages, sigmas, weights, runs, attack, seed, output }) cmd.Options.Add(o);
        purifier.AddAdpOnlyTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            purifier.RequireAdp(parse, "eval snapshots");  // the curve measures ADP itself
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (clf, cinfo) = Models.ClassifierFile.Load(parse.GetValue(classifier)!, device);
            foreach (var p in clf.parameters()) p.requires_grad_(false);
            var spec = DatasetRegistry.Get(cinfo.Dataset);
            // With S = 0 the classifier only names the data set: its hold-out does not matter, nor do purifier and attack.
            bool gainsOnly = parse.GetValue(runs) == 0;
            using var all = CliSupport.LoadEvaluationSplit(parse, spec, split, validationImages, gainsOnly ? [] : [(cinfo.Path, cinfo.Metadata)]);
            using var data = all.Take(parse.GetValue(images));
            var transfer = TransferAttack(spec, parse.GetValue(attack));
            var choices = parse.GetValue(weights)!.ToLowerInvariant() switch
            {
                "both" => new[] { Models.WeightsChoice.Model, Models.WeightsChoice.Ema },
                "model" => [Models.WeightsChoice.Model],
                "ema" => [Models.WeightsChoice.Ema],
                var w => throw new AdpException($"--weights: expected Model, Ema or both, got '{w}'"),
            };
            var sigmaList = ParseList(parse.GetValue(sigmas)!, "--denoise-sigmas",
                v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture));
            if (sigmaList.Any(s => !(s > 0) || !double.IsFinite(s)) || sigmaList.Distinct().Count() != sigmaList.Count)
                throw new AdpException($"--denoise-sigmas: expected distinct positive finite values, got '{parse.GetValue(sigmas)}'");
            var settings = purifier.Read(parse);
            if (parse.GetValue(runs) < 0) throw new AdpException($"--runs: expected ≥ 0 (0: the denoising gain only), got {parse.GetValue(runs)}");
            var outDir = parse.GetValue(output)!;
            var fingerprint = gainsOnly
                ? new SnapshotCurve.Fingerprint(data.Description, "", new PurifierSettings(), 0, "", parse.GetValue(seed))
                : new SnapshotCurve.Fingerprint(data.Description, RobustEvaluation.Sha256(cinfo.Path), settings, parse.GetValue(runs),
                    transfer.Protocol(), parse.GetValue(seed));
            var curve = new SnapshotCurve(clf, data, settings, parse.GetValue(runs), transfer, parse.GetValue(seed), device, outDir, fingerprint);
            AnsiConsole.MarkupLine(Markup.Escape($"{data.Description}; transfer attack {transfer.Protocol()}; ADP {settings.Describe()}, S={parse.GetValue(runs)}"));
            if (all.Split == Split.Train)
                foreach (var file in parse.GetValue(files)!.DistinctBy(Path.GetFullPath).OrderBy(f => f).Where(File.Exists))
                {
                    using var head = IO.SafeTensors.Load(file);  // snapshots may come from different trainings
                    CliSupport.NoteScoreModelOverlap(all, file, head.Metadata, spec);
                }
            var t = new Table().AddColumns(["snapshot", "iteration", "weights", .. sigmaList.Select(s => $"gain σ={s} (dB)"), "natural", "transfer"]);
            foreach (var file in parse.GetValue(files)!.DistinctBy(Path.GetFullPath).OrderBy(f => f))
                foreach (var w in choices)
                {
                    var p = curve.Measure(file, w, sigmaList, out bool reused);
                    t.AddRow([Markup.Escape(Path.GetFileName(file)), p.Iteration.ToString(), w.ToString(),
                        .. sigmaList.Select(s => $"{p.DenoiseGain[s]:F2}"), Percent(p.NaturalAccuracy), Percent(p.TransferAccuracy)]);
                    Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {(reused ? "stored" : "measured")} {Path.GetFileName(file)} ({w}): " +
                                      $"natural {Percent(p.NaturalAccuracy)}, transfer {Percent(p.TransferAccuracy)}");
                }
            foreach (var f in curve.StoredOnly(parse.GetValue(files)!))
                Console.WriteLine($"note: the curve also holds {f}, measured into {outDir} by an earlier run");
            curve.Write(outDir, $"{spec.Name}: score-model snapshots ({parse.GetValue(split)} split, {data.Count} images)");  // the full description overflows the title
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {Path.Combine(outDir, "curve.csv")}, " +
                                                 (parse.GetValue(runs) > 0 ? "curve-accuracy.png and " : "") + "curve-denoise.png"));
            return 0;
        }));
        return cmd;
    }

    private static string Percent(double? accuracy) => accuracy is { } a ? $"{100 * a:F1}%" : "–";
}
