using System.CommandLine;
using Adp.Data;
using Adp.Evaluation;
using Adp.Models;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class EvalCommands
{
    public static Command Create()
    {
        var eval = new Command("eval", "Evaluate score models, classifiers and the defense");
        eval.Subcommands.Add(CreateDenoise());
        eval.Subcommands.Add(CreateClean());
        eval.Subcommands.Add(CreateDefended());
        eval.Subcommands.Add(CreateRobust());
        eval.Subcommands.Add(CreateReport());
        eval.Subcommands.Add(CreateMerge());
        eval.Subcommands.Add(CreateCompare());
        eval.Subcommands.Add(CreateReplay());
        eval.Subcommands.Add(CreateSnapshots());
        eval.Subcommands.Add(CreateTune());
        eval.Subcommands.Add(CreateEpsilonPlot());
        return eval;
    }

    private static Command CreateDenoise()
    {
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var sigma = new Option<double>("--sigma") { DefaultValueFactory = _ => 0.25 };
        var images = new Option<int>("--images") { Description = "first N images of the split (--split)", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 100 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var weights = new Option<WeightsChoice?>("--weights") { Description = "Model or Ema (default: the checkpoint's choice)" };
        var cmd = new Command("denoise", "PSNR of x+σz before and after the one-shot Tweedie estimate x̃+σ·h(x̃) on the evaluation split (--split: test by default)");
        var split = CliSupport.SplitOption();
        var validationImages = CliSupport.ValidationImagesOption();
        foreach (var o in new Option[] { score, sigma, images, batch, seed, weights, split, validationImages }) cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (net, info) = ScoreModelFile.Load(parse.GetValue(score)!, parse.GetValue(weights), device);
            using var _ = net;
            using var test = CliSupport.LoadEvaluationSplit(parse, DatasetRegistry.Get(info.Dataset), split, validationImages);
            ModelChecks.RequireImageShape(info.Path, info.Config.Channels, info.Config.ImageSize, test.Spec);
            CliSupport.NoteScoreModelOverlap(test, info.Path, info.Metadata, test.Spec);
            using var subset = test.Take(parse.GetValue(images));
            var r = DenoiseEvaluation.Run(net, subset, parse.GetValue(sigma), parse.GetValue(batch), parse.GetValue(seed), device);
            var t = new Table().AddColumns("quantity", "value");
            t.AddRow("data", Markup.Escape(subset.Description));
            t.AddRow("score model", Markup.Escape($"{info.Path} (iteration {info.Iteration}, {info.Weights} weights)"));
            t.AddRow("σ, seed", $"{r.Sigma}, {r.Seed}");
            t.AddRow("PSNR noisy (mean over images)", $"{r.PsnrNoisy:F2} dB");
            t.AddRow("PSNR denoised (mean over images)", $"{r.PsnrDenoised:F2} dB");
            t.AddRow("gain", $"[bold]{r.Gain:F2} dB[/]");
            AnsiConsole.Write(t);
            Console.WriteLine($"denoise sigma={r.Sigma} images={r.Images} psnr_noisy={r.PsnrNoisy:F2} psnr_denoised={r.PsnrDenoised:F2} gain={r.Gain:F2}");
            return 0;
        }));
        return cmd;
    }
}
