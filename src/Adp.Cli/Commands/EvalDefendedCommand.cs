using System.CommandLine;
using Adp.Data;
using Adp.Evaluation;
using Adp.Models;
using Adp.Purification;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    private static Command CreateDefended()
    {
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var images = new Option<int>("--images") { Description = "first N images of the split (--split)", DefaultValueFactory = _ => 1000 };
        var runs = new Option<int>("--runs") { Description = "purification runs S per input", DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size") { Description = "inputs per batch (S runs each)", DefaultValueFactory = _ => 100 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var purifier = new PurifierOptions();
        var cmd = new Command("defended", "Natural accuracy of the ADP defense (S purification runs + classifier) on clean images of the evaluation split (--split: test by default), per decision rule");
        var split = CliSupport.SplitOption();
        var validationImages = CliSupport.ValidationImagesOption();
        foreach (var o in new Option[] { classifier, score, images, runs, batch, seed, split, validationImages }) cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (clf, cinfo, net, sinfo) = CliSupport.LoadDefense(parse.GetValue(classifier)!, parse.GetValue(score)!, device);
            using var _c = clf;
            using var _s = net;
            var spec = DatasetRegistry.Get(cinfo.Dataset);
            ModelChecks.RequireClassifier(cinfo.Path, cinfo.Config, spec);
            ModelChecks.RequireImageShape(sinfo.Path, sinfo.Config.Channels, sinfo.Config.ImageSize, spec);
            using var test = CliSupport.LoadEvaluationSplit(parse, spec, split, validationImages, (cinfo.Path, cinfo.Metadata));
            CliSupport.NoteScoreModelOverlap(test, sinfo.Path, sinfo.Metadata, spec);
            using var subset = test.Take(parse.GetValue(images));
            var variant = purifier.ReadVariant(parse, sinfo.Metadata);
            var defense = new DefendedClassifier(clf, variant.Create(net, purifier.Read(parse, sinfo.Metadata)), parse.GetValue(runs));
            string evaluated = Markup.Escape(variant.Label);
            var bare = CleanEvaluation.Run(clf, subset, 500, device);
            DefendedResult r = null!;
            AnsiConsole.MarkupLine(Markup.Escape($"{subset.Description}; classifier {cinfo.Path}; score model {sinfo.Path} ({sinfo.Weights} weights); {defense.Purifier.Describe()}, S={defense.Runs}, seed {parse.GetValue(seed)}"));
            ProgressReporter.Run("defended", subset.Count, (report, token) =>
                r = DefendedEvaluation.Run(defense, subset, parse.GetValue(batch), parse.GetValue(seed), device,
                    done => { token.ThrowIfCancellationRequested(); report(new Training.TrainingProgress(done, subset.Count, double.NaN, 0)); }));
            var t = new Table().AddColumns("classifier", "decision rule", "natural accuracy", "95% interval");
            var (blo, bhi) = bare.Interval;
            t.AddRow("bare", "-", $"{100 * bare.Accuracy:F2}%", $"{100 * blo:F1} – {100 * bhi:F1}");
            foreach (var rule in r.Rules)
            {
                var (lo, hi) = rule.Interval;
                t.AddRow(evaluated, rule.Rule.ToString(), $"{100 * rule.Accuracy:F2}%", $"{100 * lo:F1} – {100 * hi:F1}");
            }
            t.AddRow(evaluated, "single run (mean over runs)", $"{100 * r.SingleRunAccuracy:F2}%", "");
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLine(Markup.Escape($"mean steps per run {r.MeanSteps:F2}; {r.Seconds:F1} s ({r.Images * r.Runs / r.Seconds:F1} purifications/s)"));
            foreach (var rule in r.Rules)
                Console.WriteLine($"defended rule={rule.Rule} accuracy={100 * rule.Accuracy:F2} images={r.Images} runs={r.Runs} seed={r.Seed} bare={100 * bare.Accuracy:F2}");
            return 0;
        }));
        return cmd;
    }
}
