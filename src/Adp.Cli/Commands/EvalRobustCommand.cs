using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Adp.Attacks;
using Adp.Data;
using Adp.Evaluation;
using Adp.IO;
using Adp.Models;
using Adp.Purification;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    private static Command CreateRobust()
    {
        var config = new Option<string?>("--config") { Description = "evaluation configuration (JSON); flags below override its fields" };
        var dataset = new Option<string?>("--dataset") { Description = "data set (default: the classifier's)" };
        var images = new Option<int?>("--images") { Description = "first N test images" };
        var classifier = new Option<string?>("--classifier") { Description = "classifier checkpoint" };
        var score = new Option<string?>("--score") { Description = "score-model checkpoint" };
        var runs = new Option<int?>("--runs") { Description = "purification runs S" };
        var seeds = new Option<string?>("--seeds") { Description = "comma-separated seeds, e.g. 0,1,2" };
        var resub = new Option<int?>("--resubmissions") { Description = "resubmissions of each adversarial input (worst case reported)" };
        var batch = new Option<int?>("--batch-size") { Description = "images per attack batch" };
        var attack = new Option<string[]>("--attack")
        {
            Description = "an attack: key=value pairs, e.g. kind=pgd,target=bpda,eps=0.3,step=0.075,iters=40,eot=15,random-start=false " +
                          "(kind: none|fgsm|pgd|apgd; target: bare|blind|bpda (research code)|bpda-sign-vote|bpda-mean|bpda-score|full; norm: linf|l2; loss: ce|margin|dlr; " +
                          "skip-misclassified=true attacks only the images classified correctly on clean input, as AutoAttack does; " +
                          "after=NAME attacks only the images the earlier attack NAME (same norm, ε no larger; quote a name with commas: after=\"A, B\") left robust " +
                          "and reports the worst case of both, AutoAttack's cascade); repeatable",
            AllowMultipleArgumentsPerToken = false,
        };
        var stepsCurve = new Option<string?>("--steps-curve") { Description = "comma-separated T values for the accuracy-vs-steps plot" };
        var shard = new Option<string?>("--shard") { Description = "K/N: evaluate only images i with i mod N = K (merge the N folders with `adp eval merge`)" };
        var split = new Option<string?>("--split") { Description = "test (default), or validation (the last --validation-images training images; tune on it)" };
        var validationImages = new Option<int?>("--validation-images")
        {
            Description = "with --split validation: how many of the last training images (default 5,000; the shipped CIFAR-10 ResNet holds out only 2,000)",
        };
        var output = new Option<string>("--out") { Description = "report folder (rerun with the same folder to resume)", Required = true };
        var noCheckpointing = new Option<bool>("--no-checkpointing")
        {
            Description = "full-gradient attacks keep every purification step's graph instead of recomputing it in the backward " +
                          "pass: one network pass per step fewer (CIFAR-10 ngf 32, EOT 20: ~30% less time, ~2 GiB more memory; memory " +
                          "grows with rows x steps; slower on the ngf-16 28x28 models), the same gradients to float rounding",
        };
        var purifier = new PurifierOptions();
        var cmd = new Command("robust", "Robust accuracy of the bare classifier and of the ADP defense (or a variant: --purifier) under attacks; writes a report folder");
        foreach (var o in new Option[] { config, dataset, images, classifier, score, runs, seeds, resub, batch, attack, stepsCurve, shard, split,
                                         validationImages, output, noCheckpointing })
            cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var cfgPath = parse.GetValue(config);
            RobustConfig cfg = cfgPath is not null
                ? RobustConfig.Load(cfgPath)
                : new RobustConfig
                {
                    Classifier = parse.GetValue(classifier) ?? throw new AdpException("--classifier is required (or --config)"),
                    Score = parse.GetValue(score) ?? throw new AdpException("--score is required (or --config)"),
                };
            var (shardIndex, shardCount) = parse.GetValue(shard) is { } sh ? ParseShard(sh) : (cfg.ShardIndex, cfg.ShardCount);
            cfg = cfg with
            {
                Classifier = parse.GetValue(classifier) ?? cfg.Classifier,
                Score = parse.GetValue(score) ?? cfg.Score,
                Images = parse.GetValue(images) ?? cfg.Images,
                Runs = parse.GetValue(runs) ?? cfg.Runs,
                Resubmissions = parse.GetValue(resub) ?? cfg.Resubmissions,
                BatchSize = parse.GetValue(batch) ?? cfg.BatchSize,
                Seeds = parse.GetValue(seeds) is { } s ? ParseList(s, "--seeds", long.Parse) : cfg.Seeds,
                StepsCurve = parse.GetValue(stepsCurve) is { } sc ? ParseList(sc, "--steps-curve", int.Parse) : cfg.StepsCurve,
                Attacks = parse.GetValue(attack) is { Length: > 0 } a ? a.Select(ParseAttack).ToList() : cfg.Attacks,
                ShardIndex = shardIndex, ShardCount = shardCount,
                Split = parse.GetValue(split) ?? cfg.Split,
                ValidationImages = parse.GetValue(validationImages) ?? cfg.ValidationImages,
            };
            if (cfg.Attacks.Count == 0) throw new AdpException("no attacks: pass --attack (repeatable) or a --config with \"Attacks\"");
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (clf, cinfo, net, sinfo) = CliSupport.LoadDefense(cfg.Classifier, cfg.Score, device);
            // The purifier: the config's, or the --preset (else the score checkpoint's recommended preset, else paper)
            // when there is no config or --preset is given; single flags override single fields.
            cfg = cfg with
            {
                Purifier = purifier.Override(cfgPath is null || parse.GetValue(purifier.Preset) is not null
                    ? PurifierPresets.Get(purifier.PresetName(parse, sinfo.Metadata)) : cfg.Purifier, parse),
                // The variant likewise: the preset's where the settings come from a preset, else the config's, with --purifier and
                // the variant's parameters over it; ADP is written as none.
                Variant = purifier.ReadVariant(parse, sinfo.Metadata,
                    cfgPath is null || parse.GetValue(purifier.Preset) is not null ? null : cfg.EffectiveVariant) is { Kind: not PurifierKind.Adp } v ? v : null,
            };
            cfg.Validate();
            foreach (var p in clf.parameters()) p.requires_grad_(false);
            foreach (var p in net.parameters()) p.requires_grad_(false);
            var spec = DatasetRegistry.Get(parse.GetValue(dataset) ?? cinfo.Dataset);
            cfg = cfg with { Dataset = spec.Name };
            ModelChecks.RequireClassifier(cinfo.Path, cinfo.Config, spec);
            ModelChecks.RequireImageShape(sinfo.Path, sinfo.Config.Channels, sinfo.Config.ImageSize, spec);
            if (cfg.Split == "validation") Training.ClassifierTrainer.RequireHeldOut(cinfo.Path, cinfo.Metadata, cfg.ValidationCount, spec.TrainCount);
            using var test = DatasetLoader.LoadEvaluationSplit(spec, cfg.Split, DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir)), cfg.ValidationCount);
            CliSupport.NoteScoreModelOverlap(test, sinfo.Path, sinfo.Metadata, spec);
            using var subset = test.Take(cfg.Images);
            var outDir = parse.GetValue(output)!;
            var eval = new RobustEvaluation(cfg, subset, clf, net, device, outDir)
            {
                ClassifierHash = RobustEvaluation.Sha256(cfg.Classifier), ScoreHash = RobustEvaluation.Sha256(cfg.Score),
                Checkpointing = !parse.GetValue(noCheckpointing),
            };
            var existing = EvaluationProgress.Load(outDir);
            // Before config.json is replaced. The folder's own config resumes it whatever the presets say today (a preset may have
            // changed since, e.g. mnist's purifier on 2026-12-01).
            existing?.RequireFingerprint(eval.Fingerprint(), outDir,
                $"resume it with --config {Path.Combine(outDir, "config.json")} (its own settings), use another folder, or delete " +
                $"{EvaluationProgress.PathIn(outDir)} to start over");
            if (existing is not null)
            {
                var (done, total) = existing.Coverage(cfg);
                AnsiConsole.MarkupLine(Markup.Escape($"resuming {outDir}: {done} of {total} image results of this configuration are stored; " +
                                                     $"computing the other {total - done}"));
            }
            Directory.CreateDirectory(outDir);
            AtomicFile.Write(Path.Combine(outDir, "config.json"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(cfg, RobustConfig.Json));

            AnsiConsole.MarkupLine(Markup.Escape($"{subset.Description}{(cfg.ShardCount > 1 ? $", shard {cfg.Shard}" : "")}; {cinfo.Config.Describe()}; " +
                                                 $"{cfg.DescribePurifier()}, S={cfg.Runs}; seeds {string.Join(",", cfg.Seeds)}; report → {outDir}"));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // A SIGTERM that comes once every batch is stored (e.g. `carry/queue.sh drain`, timed to a batch's end) must not kill
            // the process while it writes the report: during the run it cancels (ProgressReporter), after it it is ignored
            // until the report is written. Registered first, so no gap is left between the two.
            using var finishReport = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => ctx.Cancel = true);
            bool interrupted = ProgressReporter.Run("robust", 1, (report, token) =>
                !eval.Run((label, done, total, note) => report(new Training.TrainingProgress(done, total, double.NaN, 0, $"images — {label}, {note}")), token),
                () => eval.Activity);
            if (interrupted)
            {
                // The batch in flight is dropped whole; every finished batch is in progress.json.
                Console.Error.WriteLine($"adp: interrupted; the finished batches are saved in {EvaluationProgress.PathIn(outDir)}: " +
                                        "rerun the same command to resume");
                return Interrupted;
            }
            var env = Environment(device);
            env["run time this invocation"] = $"{clock.Elapsed.TotalSeconds:F0} s";
            if (cfg.Attacks.Any(a => a.Target == AttackTarget.Full)
                && cfg.EffectiveVariant.Kind is PurifierKind.Adp or PurifierKind.Reinject)
                env["full-gradient memory"] = eval.Checkpointing ? "checkpointing (each step's graph recomputed in the backward pass)"
                    : "every step's graph kept (--no-checkpointing)";
            var result = RobustReport.Build(cfg, eval, subset, env);
            result.Write(outDir, eval);
            PrintReport(result, $"{subset.Description}; S={cfg.Runs}, {cfg.Resubmissions} resubmission(s), seeds {string.Join(",", cfg.Seeds)}");
            AnsiConsole.MarkupLine(Markup.Escape($"report: {Path.Combine(outDir, "report.md")} (and results.json, results.csv, plots, example grids, " +
                                                 "adversarial examples in adv/)"));
            return 0;
        }));
        return cmd;
    }

    /// <summary>Exit code of an evaluation stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;

    /// <summary>Versions and machine facts every report records.</summary>
    internal static Dictionary<string, string> Environment(TorchSharp.torch.Device device) => new()
    {
        ["adp version"] = Checkpoint.ToolkitVersion, ["libtorch"] = TorchSharp.torch.__version__,
        ["threads"] = TorchSharp.torch.get_num_threads().ToString(), ["device"] = device.ToString(),
        ["machine"] = $"{System.Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
        ["finished (UTC)"] = DateTime.UtcNow.ToString("u"),
    };

    /// <summary>The report's table, protocols, sanity verdicts and notes on the terminal.</summary>
    internal static void PrintReport(RobustReport result, string footer)
    {
        var t = new Table().AddColumns("attack", "evaluated", "rule", "accuracy (mean ± std over seeds)", "95% interval over images",
            "worst of resubmissions", "per-run worst");
        foreach (var r in result.Rows)
            t.AddRow(Markup.Escape(r.Attack), r.Defended ? Markup.Escape(result.Config.EffectiveVariant.Label) : "bare", r.Rule, $"{100 * r.Mean:F1}% ± {100 * r.Std:F1}",
                $"{100 * r.CiLow:F1}–{100 * r.CiHigh:F1}" +
                (result.Interim ? $" ({r.Images} of {result.Config.ImageIndices().Count} images, {r.PerSeed.Count} of {result.Config.Seeds.Count} seeds)" : ""),
                r.WorstOfResubmissions is { } w ? $"{100 * w:F1}%" : "–",
                r.PerRunWorst is { } p ? $"{100 * p:F1}%" : "–");
        AnsiConsole.Write(t);
        foreach (var (label, protocol) in result.Rows.Select(r => (r.Attack, r.Protocol)).Distinct())
            AnsiConsole.MarkupLine(Markup.Escape($"  {label}: {protocol}"));
        AnsiConsole.MarkupLine(Markup.Escape($"  {footer}"));
        foreach (var c in result.Checks)
        {
            var (colour, word) = c.Status switch
            {
                CheckStatus.Held => ("green", "held"), CheckStatus.Violated => ("red", "VIOLATED"), _ => ("grey", "not run"),
            };
            AnsiConsole.MarkupLine($"[{colour}]sanity check {word}:[/] {Markup.Escape(c.Name)} — {Markup.Escape(c.Detail)}");
        }
        foreach (var n in result.SanityNotes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
    }

    private static (int Index, int Count) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int k) && int.TryParse(parts[1], out int n) && n >= 1 && k >= 0 && k < n) return (k, n);
        throw new AdpException($"--shard: expected K/N with 0 ≤ K < N (e.g. 0/4), got '{text}'");
    }

    private static List<T> ParseList<T>(string text, string option, Func<string, T> parse)
    {
        var items = text.Split(',', StringSplitOptions.TrimEntries);
        if (items.Any(i => i.Length == 0)) throw new AdpException($"{option}: expected a comma-separated list of numbers without empty entries, got '{text}'");
        try { return items.Select(parse).ToList(); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new AdpException($"{option}: expected a comma-separated list of numbers, got '{text}'"); }
    }

    /// <summary>The enum member named <paramref name="v"/> (any case); null for other names and for numbers, which
    /// Enum.TryParse would take as values.</summary>
    private static T? Named<T>(string v) where T : struct, Enum =>
        v.Length > 0 && !char.IsAsciiDigit(v[0]) && v[0] is not ('-' or '+') && Enum.TryParse<T>(v, true, out var x) && Enum.IsDefined(x) ? x : null;

    /// <summary>Parses "kind=pgd,target=bpda,eps=0.3,..." into an attack.</summary>
    public static AttackSpec ParseAttack(string text)
    {
        var spec = new AttackSpec();
        foreach (var (key, v) in KeyValuePairs(text))
        {
            string k = key.ToLowerInvariant();
            double D() => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : throw new AdpException($"--attack: {k} expects a finite number, got '{v}'");
            int I() => int.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i) ? i : throw new AdpException($"--attack: {k} expects an integer, got '{v}'");
            bool B() => bool.TryParse(v, out var b) ? b : throw new AdpException($"--attack: {k} expects true or false, got '{v}'");
            spec = k switch
            {
                "name" => spec with { Name = v },
                "kind" => spec with { Kind = Named<AttackKind>(v) is { } kind ? kind : throw new AdpException($"--attack: kind must be none, fgsm, pgd or apgd, got '{v}'") },
                "target" => spec with { Target = Named<AttackTarget>(v.Replace("-", "")) is { } tg ? tg : throw new AdpException($"--attack: target must be bare, blind, bpda, bpda-sign-vote, bpda-mean, bpda-score or full, got '{v}'") },
                "norm" => spec with { Norm = v.ToLowerInvariant() switch { "linf" => Norm.Linf, "l2" => Norm.L2, _ => throw new AdpException($"--attack: norm must be linf or l2, got '{v}'") } },
                "eps" => spec with { Epsilon = D() },
                "step" => spec with { Step = D() },
                "iters" => spec with { Iterations = I() },
                "restarts" => spec with { Restarts = I() },
                "eot" => spec with { Eot = I() },
                "random-start" => spec with { RandomStart = B() },
                "best" => spec with { ReturnBest = B() },
                "skip-misclassified" => spec with { SkipMisclassified = B() },
                "after" => spec with { After = v },
                "loss" => spec with { Loss = v.ToLowerInvariant() switch { "ce" => AttackLoss.CrossEntropy, "margin" or "cw" => AttackLoss.Margin, "dlr" => AttackLoss.Dlr, _ => throw new AdpException($"--attack: loss must be ce, margin or dlr, got '{v}'") } },
                _ => throw new AdpException($"--attack: unknown key '{k}' (name, kind, target, norm, eps, step, iters, restarts, eot, random-start, best, loss, skip-misclassified, after)"),
            };
        }
        return spec;
    }

    /// <summary>Splits an <c>--attack</c> value into key=value pairs at commas. A value may be written in double quotes,
    /// inside which commas are part of it (<c>after="BPDA+EOT (EOT 15, 40 iters)"</c>: generated attack names hold commas);
    /// a quoted value holds no double quote itself.</summary>
    /// <exception cref="AdpException">a pair without '=', an unclosed quote, or text after a closing quote.</exception>
    internal static List<(string Key, string Value)> KeyValuePairs(string text)
    {
        var pairs = new List<(string, string)>();
        int i = 0;
        while (i < text.Length)
        {
            int comma = text.IndexOf(',', i), eq = text.IndexOf('=', i);
            if (comma < 0) comma = text.Length;
            if (eq < 0 || eq > comma)
            {
                var piece = text[i..comma].Trim();
                if (piece.Length > 0) throw new AdpException($"--attack '{text}': expected key=value pairs, got '{piece}'");
                i = comma + 1;
                continue;
            }
            var key = text[i..eq].Trim();
            int v = eq + 1;
            while (v < text.Length && char.IsWhiteSpace(text[v]) && text[v] != ',') v++;
            string value;
            if (v < text.Length && text[v] == '"')
            {
                int close = text.IndexOf('"', v + 1);
                if (close < 0) throw new AdpException($"--attack '{text}': the quoted value of '{key}' has no closing double quote");
                value = text[(v + 1)..close];
                int next = close + 1;
                while (next < text.Length && char.IsWhiteSpace(text[next])) next++;
                if (next < text.Length && text[next] != ',')
                    throw new AdpException($"--attack '{text}': after the closing quote of '{key}' expected ',' or the end");
                i = next + 1;
            }
            else
            {
                value = text[(eq + 1)..comma].Trim();
                i = comma + 1;
            }
            pairs.Add((key, value));
        }
        return pairs;
    }
}
