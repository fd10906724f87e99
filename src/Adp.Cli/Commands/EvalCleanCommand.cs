using System.CommandLine;
using Adp.Data;
using Adp.Evaluation;
using Adp.Models;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    private static Command CreateClean()
    {
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var images = new Option<int>("--images") { Description = "first N test images (0 = all)", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 500 };
        var dataset = new Option<string?>("--dataset") { Description = "data set (default: the classifier's)" };
        var png = new Option<string?>("--confusion-png") { Description = "where to write the confusion matrix (default: next to the checkpoint)" };
        var cmd = new Command("clean", "Test accuracy of a bare classifier with a 95% interval, per-class accuracy and a confusion matrix");
        foreach (var o in new Option[] { classifier, images, batch, dataset, png }) cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (net, info) = ClassifierFile.Load(parse.GetValue(classifier)!, device);
            using var _ = net;
            var spec = DatasetRegistry.Get(parse.GetValue(dataset) ?? info.Dataset);
            ModelChecks.RequireClassifier(info.Path, info.Config, spec);
            using var test = DatasetLoader.Load(spec, Split.Test, Data.DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir)));
            int n = parse.GetValue(images);
            using var subset = n > 0 ? test.Take(n) : test.Take(test.Count);
            var r = CleanEvaluation.Run(net, subset, parse.GetValue(batch), device);

            var (lo, hi) = r.Interval;
            AnsiConsole.MarkupLine(Markup.Escape($"{info.Config.Describe()} ({info.Path}) on {r.Data}"));
            AnsiConsole.MarkupLine($"accuracy [bold]{100 * r.Accuracy:F2}%[/] ({r.Correct}/{r.Images}), 95% Wilson interval {Markup.Escape($"[{100 * lo:F2}, {100 * hi:F2}]")}");
            var t = new Table().AddColumn("true \\ predicted");
            for (int j = 0; j < r.ClassNames.Count; j++) t.AddColumn(new TableColumn(j.ToString()).RightAligned());
            t.AddColumn(new TableColumn("accuracy").RightAligned());
            for (int i = 0; i < r.ClassNames.Count; i++)
            {
                var row = new List<string> { Markup.Escape($"{i} {r.ClassNames[i]}") };
                for (int j = 0; j < r.ClassNames.Count; j++) row.Add(i == j ? $"[green]{r.Confusion[i, j]}[/]" : r.Confusion[i, j] == 0 ? "[grey]0[/]" : r.Confusion[i, j].ToString());
                row.Add($"{100 * r.ClassAccuracy(i):F1}%");
                t.AddRow(row.ToArray());
            }
            AnsiConsole.Write(t);
            var pngPath = parse.GetValue(png) ?? Path.ChangeExtension(info.Path, null) + ".confusion.png";
            Plots.ConfusionMatrix(r, pngPath, $"{spec.Name}: {100 * r.Accuracy:F2}% on {r.Images} test images");
            AnsiConsole.MarkupLine(Markup.Escape($"confusion matrix: {pngPath}"));
            Console.WriteLine($"clean accuracy={100 * r.Accuracy:F2} correct={r.Correct} images={r.Images} ci95=[{100 * lo:F2},{100 * hi:F2}]");
            return 0;
        }));
        return cmd;
    }
}
