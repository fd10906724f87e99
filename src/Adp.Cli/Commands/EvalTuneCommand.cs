using System.CommandLine;
using System.Globalization;
using Adp.Data;
using Adp.Evaluation;
using Adp.Purification;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    /// <summary>`adp eval tune --classifier C --score S --sigma-grid … --out DIR`: purifier settings on the natural-vs-transfer
    /// trade-off, measured on the validation split (issue #12 item 2).</summary>
    private static Command CreateTune()
    {
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var weights = new Option<Models.WeightsChoice?>("--weights") { Description = "score weights: Model or Ema (default: the checkpoint's)" };
        var images = new Option<int>("--images") { Description = "first N images of the split", DefaultValueFactory = _ => 256 };
        var split = CliSupport.SplitOption();
        split.DefaultValueFactory = _ => "validation";
        var runs = new Option<int>("--runs") { Description = "purification runs S (mean-softmax rule)", DefaultValueFactory = _ => 4 };
        var attack = TransferAttackOption();
        var sigmaGrid = new Option<string?>("--sigma-grid") { Description = "comma-separated σ values (default: the base setting's)" };
        var stepsGrid = new Option<string?>("--steps-grid") { Description = "comma-separated T values" };
        var lambdaGrid = new Option<string?>("--lambda-grid") { Description = "comma-separated λ values" };
        var drop = new Option<double>("--max-natural-drop") { Description = "choice rule: natural accuracy at most this many points below the bare classifier's", DefaultValueFactory = _ => 1.0 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 64 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "folder for tune.json, tune.csv and tradeoff.png (a rerun measures only missing settings)", Required = true };
        var purifier = new PurifierOptions();
        var cmd = new Command("tune", "Purifier settings (grid over σ, T, λ; ADP or a variant, --purifier) on the natural vs transfer-attack " +
                                      "trade-off, on the validation split; chooses the most robust setting within --max-natural-drop of the bare " +
                                      "classifier among every setting stored in --out (run once per variant into the same folder to compare them)");
        var validationImages = CliSupport.ValidationImagesOption();
        foreach (var o in new Option[] { classifier, score, weights, images, split, validationImages, runs, attack, sigmaGrid, stepsGrid, lambdaGrid, drop, batch, seed, output })
            cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            if (parse.GetValue(runs) < 1) throw new AdpException($"--runs: expected ≥ 1, got {parse.GetValue(runs)}");
            if (parse.GetValue(batch) < 1) throw new AdpException($"--batch-size: expected ≥ 1, got {parse.GetValue(batch)}");
            if (parse.GetValue(images) < 1) throw new AdpException($"--images: expected ≥ 1, got {parse.GetValue(images)}");
            double maxDrop = parse.GetValue(drop);
            if (!(maxDrop >= 0 && maxDrop <= 100)) throw new AdpException($"--max-natural-drop: expected 0…100 (points), got {maxDrop}");
            // The grids are read before any model or data is loaded, so a malformed one fails at once.
            static double Num(string v) => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
            List<T>? Grid<T>(Option<string?> option, Func<string, T> parseOne)
            {
                if (parse.GetValue(option) is not { } text) return null;
                var values = ParseList(text, option.Name, parseOne);
                return values.Count > 0 ? values : throw new AdpException($"{option.Name}: expected at least one value, got '{text}'");
            }
            // A grid over a field the variant does not read would measure one purifier several times under different names.
            PurifierVariant CheckedVariant(IReadOnlyDictionary<string, string>? metadata)
            {
                var v = purifier.ReadVariant(parse, metadata);
                string name = v.Kind.ToString().ToLowerInvariant() +
                              (parse.GetResult(purifier.Kind) is { Implicit: false } ? "" : $" (the preset {purifier.PresetName(parse, metadata)}'s purifier; --purifier adp to tune ADP)");
                if (!v.UsesSigma && parse.GetValue(sigmaGrid) is not null)
                    throw new AdpException($"--sigma-grid: --purifier {name} takes its σs from --reinject, not from σ");
                if (!v.UsesSteps && (parse.GetValue(stepsGrid) is not null || parse.GetValue(lambdaGrid) is not null))
                    throw new AdpException($"--steps-grid/--lambda-grid: --purifier {name} reads σ only (T and λ do not apply)");
                return v;
            }
            // Before any model is loaded where the command line decides it; again below with the score checkpoint's recommended preset.
            if (parse.GetResult(purifier.Kind) is { Implicit: false } || parse.GetValue(purifier.Preset) is not null) CheckedVariant(null);
            var sigmasGiven = Grid(sigmaGrid, Num);
            var stepsGiven = Grid(stepsGrid, v => int.Parse(v, CultureInfo.InvariantCulture));
            var lambdasGiven = Grid(lambdaGrid, Num);
            var (clf, cinfo, net, sinfo) = CliSupport.LoadDefense(parse.GetValue(classifier)!, parse.GetValue(score)!, device, parse.GetValue(weights));
            foreach (var p in clf.parameters()) p.requires_grad_(false);
            foreach (var p in net.parameters()) p.requires_grad_(false);
            clf.eval();
            net.eval();
            var spec = DatasetRegistry.Get(cinfo.Dataset);
            using var all = CliSupport.LoadEvaluationSplit(parse, spec, split, validationImages, (cinfo.Path, cinfo.Metadata));
            CliSupport.NoteScoreModelOverlap(all, sinfo.Path, sinfo.Metadata, spec);
            using var data = all.Take(parse.GetValue(images));
            var transfer = TransferAttack(spec, parse.GetValue(attack));
            var variant = CheckedVariant(sinfo.Metadata);
            var baseSettings = purifier.Read(parse, sinfo.Metadata);
            var sigmasList = sigmasGiven ?? [baseSettings.Sigma];
            var stepsList = stepsGiven ?? [baseSettings.Steps];
            var lambdaList = lambdasGiven ?? [baseSettings.Lambda];
            var grid = (from sv in sigmasList from tv in stepsList from lv in lambdaList select baseSettings with { Sigma = sv, Steps = tv, Lambda = lv }).Distinct().ToList();
            foreach (var g in grid) g.Validate();

            string weightsName = sinfo.Weights.ToString();
            var fingerprint = new PresetTuning.Fingerprint(data.Description, RobustEvaluation.Sha256(cinfo.Path),
                RobustEvaluation.Sha256(sinfo.Path) + "/" + weightsName, parse.GetValue(runs), transfer.Protocol(), parse.GetValue(seed));
            var outDir = parse.GetValue(output)!;
            var tuning = new PresetTuning(clf, net, data, parse.GetValue(runs), transfer, parse.GetValue(seed), device, outDir, fingerprint);
            AnsiConsole.MarkupLine(Markup.Escape($"{data.Description}; classifier {cinfo.Path}; score {sinfo.Path} ({weightsName} weights); " +
                                                 $"transfer attack {transfer.Protocol()}; S={parse.GetValue(runs)}, seed {parse.GetValue(seed)}; " +
                                                 $"purifier {variant.Key}; {grid.Count} settings"));
            Console.WriteLine($"bare classifier: clean {100 * tuning.BareAccuracy:F1}%, transfer attack {100 * tuning.BareTransferAccuracy:F1}%");
            for (int i = 0; i < grid.Count; i++)
            {
                bool stored = tuning.Stored(grid[i], variant) is not null;
                var p = tuning.Measure(grid[i], parse.GetValue(batch), variant);
                Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {i + 1}/{grid.Count} {PresetTuning.Label(p)}: natural {100 * p.Natural:F1}%, " +
                                  $"transfer {100 * p.Transfer:F1}%{(stored ? " (stored)" : $" ({p.Seconds:F0} s)")}");
            }
            // Every point of the folder (earlier invocations' grids included, same fingerprint) takes part in the choice, the
            // table, the CSV and the plot: a grid extended by a second invocation is one search, not two.
            var measured = tuning.Points.ToList();
            int earlier = measured.Count(p => p.Purifier != variant.Key || !grid.Contains(p.Settings));
            if (earlier > 0) Console.WriteLine($"{earlier} setting(s) stored in {outDir} by earlier runs take part in the choice");
            var chosen = PresetTuning.Choose(measured, tuning.BareAccuracy, maxDrop / 100);
            tuning.Write($"{spec.Name}: purifier settings ({parse.GetValue(split)} split, {data.Count} images, S={parse.GetValue(runs)}, transfer {transfer.Name})", chosen);

            var front = PresetTuning.ParetoFront(measured);
            var t = new Table().AddColumns("purifier", "σ", "T", "λ", "α_max", "natural", "95% interval", "transfer", "95% interval", "");
            foreach (var p in measured.OrderBy(p => p.Purifier != "adp").ThenBy(p => p.Purifier).ThenBy(p => p.Settings.Sigma).ThenBy(p => p.Settings.Steps)
                         .ThenBy(p => p.Settings.Lambda).ThenBy(p => p.Settings.AlphaMax))
            {
                var (nl, nh) = Statistics.Wilson(p.NaturalCorrect, p.Images);
                var (tl, th) = Statistics.Wilson(p.TransferCorrect, p.Images);
                t.AddRow(Markup.Escape(p.Purifier), p.Settings.Sigma.ToString(CultureInfo.InvariantCulture), p.Settings.Steps.ToString(CultureInfo.InvariantCulture),
                    p.Settings.Lambda.ToString(CultureInfo.InvariantCulture), p.Settings.AlphaMax.ToString(CultureInfo.InvariantCulture), $"{100 * p.Natural:F1}%", $"{100 * nl:F1}–{100 * nh:F1}",
                    $"{100 * p.Transfer:F1}%", $"{100 * tl:F1}–{100 * th:F1}", (p == chosen ? "chosen" : "") + (front.Contains(p) ? " front" : ""));
            }
            AnsiConsole.Write(t);
            if (chosen is null)
                AnsiConsole.MarkupLine(Markup.Escape($"no setting keeps natural accuracy within {maxDrop} points of the bare classifier's {100 * tuning.BareAccuracy:F1}%"));
            else
                AnsiConsole.MarkupLine(Markup.Escape($"chosen (most robust within {maxDrop} points of the bare classifier's natural accuracy): " +
                                                     (chosen.Purifier == "adp" ? chosen.Settings.Describe() : $"{chosen.Purifier}, {PresetTuning.Label(chosen)}")));
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {Path.Combine(outDir, "tune.csv")} and tradeoff.png"));
            return 0;
        }));
        return cmd;
    }
}
