using System.CommandLine;
using Adp.Data;
using Adp.Models;
using Adp.Training;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class TrainCommands
{
    public static Command Create()
    {
        var train = new Command("train", "Train score models and classifiers");
        train.Subcommands.Add(CreateScore());
        train.Subcommands.Add(CreateClassifier());
        return train;
    }

    private static Command CreateScore()
    {
        var dataset = new Option<string>("--dataset") { Description = "mnist, fashion-mnist or cifar-10", DefaultValueFactory = _ => "mnist" };
        var ngf = new Option<int?>("--ngf") { Description = "base width of NCSNv2 (default: per data set)" };
        var sigmaMax = new Option<double?>("--sigma-max") { Description = "largest noise level σ_1 (default: per data set)" };
        var sigmaMin = new Option<double?>("--sigma-min") { Description = "smallest noise level σ_L (default 0.01)" };
        var levels = new Option<int?>("--levels") { Description = "number of geometric σ levels L" };
        var iterations = new Option<long>("--iterations") { Description = "total training iterations", DefaultValueFactory = _ => 10000 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 128 };
        var lr = new Option<double>("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 1e-4 };
        var emaRate = new Option<double>("--ema") { Description = "EMA rate of the weights", DefaultValueFactory = _ => 0.999 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var every = new Option<int>("--checkpoint-every") { DefaultValueFactory = _ => 500 };
        var keepEvery = new Option<int>("--keep-every") { Description = "also keep a snapshot OUT.iterN.ckpt (no optimizer state) every N iterations (0 = none)", DefaultValueFactory = _ => 0 };
        var trainImages = new Option<int>("--train-images") { Description = "use only the first N training images (0 = all)", DefaultValueFactory = _ => 0 };
        var noFlip = new Option<bool>("--no-flip") { Description = "disable horizontal flips even where the data set allows them" };
        var weights = new Option<WeightsChoice>("--purification-weights") { Description = "weights purification uses by default: Model (paper) or Ema", DefaultValueFactory = _ => WeightsChoice.Model };
        var gradClip = new Option<double>("--grad-clip")
        {
            Description = "clip the gradient to this global L2 norm before each Adam step (0 = none; may be set on --resume, e.g. after a divergence)",
            DefaultValueFactory = _ => 0,
        };
        var output = new Option<string>("--out") { Description = "checkpoint file", Required = true };
        var resume = new Option<bool>("--resume") { Description = "continue the run stored in --out (its settings; --iterations may raise the total)" };

        var cmd = new Command("score", "Train an NCSNv2 score model with denoising score matching");
        foreach (var o in new Option[] { dataset, ngf, sigmaMax, sigmaMin, levels, iterations, batch, lr, emaRate, seed, every, keepEvery, trainImages, noFlip, weights, gradClip, output, resume })
            cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var outPath = parse.GetValue(output)!;
            if (!(parse.GetValue(gradClip) >= 0) || double.IsInfinity(parse.GetValue(gradClip)))
                throw new AdpException($"--grad-clip: expected a finite number ≥ 0 (0 = no clipping), got {parse.GetValue(gradClip)}");
            ScoreTrainingOptions opts;
            bool isResume = parse.GetValue(resume);
            if (isResume)
            {
                if (!File.Exists(outPath)) throw new AdpException($"--resume: checkpoint {outPath} not found");
                opts = ScoreTrainer.ReadOptions(outPath);
                if (parse.GetResult(iterations) is { Implicit: false }) opts = opts with { Iterations = parse.GetValue(iterations) };
                if (parse.GetResult(keepEvery) is { Implicit: false }) opts = opts with { KeepEvery = parse.GetValue(keepEvery) };
                if (parse.GetResult(gradClip) is { Implicit: false }) opts = opts with { GradClip = parse.GetValue(gradClip) };
                NoteIgnoredOnResume(parse, [dataset, ngf, sigmaMax, sigmaMin, levels, batch, lr, emaRate, seed, trainImages, noFlip, weights]);
            }
            else
            {
                var name = DatasetRegistry.Get(parse.GetValue(dataset)!).Name;
                var d = ScoreModelConfig.ForDataset(name);
                var model = d with
                {
                    Ngf = parse.GetValue(ngf) ?? d.Ngf,
                    SigmaMax = parse.GetValue(sigmaMax) ?? d.SigmaMax,
                    SigmaMin = parse.GetValue(sigmaMin) ?? d.SigmaMin,
                    NumLevels = parse.GetValue(levels) ?? d.NumLevels,
                };
                model.Validate();
                opts = new ScoreTrainingOptions
                {
                    Dataset = name, Model = model, Iterations = Positive(parse.GetValue(iterations), "--iterations"),
                    BatchSize = (int)Positive(parse.GetValue(batch), "--batch-size"), LearningRate = parse.GetValue(lr),
                    EmaRate = parse.GetValue(emaRate), Seed = parse.GetValue(seed), CheckpointEvery = parse.GetValue(every),
                    KeepEvery = Math.Max(0, parse.GetValue(keepEvery)),
                    TrainImages = parse.GetValue(trainImages), HorizontalFlip = !parse.GetValue(noFlip),
                    PurificationWeights = parse.GetValue(weights), Device = CliSupport.ResolveDevice(parse), GradClip = parse.GetValue(gradClip),
                };
                if (File.Exists(outPath)) throw new AdpException($"--out {outPath}: file exists; pass --resume to continue it or choose another path");
            }
            using var data = DatasetLoader.Load(opts.Dataset, Split.Train, parse.GetValue(CliSupport.DataDir));
            AnsiConsole.MarkupLine(Markup.Escape($"training score model: {data.Description}{(opts.TrainImages > 0 && opts.TrainImages < data.Count ? $" (the first {opts.TrainImages} used)" : "")}, NCSNv2 ngf {opts.Model.Ngf}, σ {opts.Model.SigmaMax}→{opts.Model.SigmaMin} (L={opts.Model.NumLevels}), " +
                                                 $"batch {opts.BatchSize}, lr {opts.LearningRate}{(opts.GradClip > 0 ? $", gradient clipped to norm {opts.GradClip}" : "")}, seed {opts.Seed}, " +
                                                 $"{opts.Iterations} iterations → {outPath}"));
            var trainer = new ScoreTrainer(opts, data, outPath);
            var reached = ProgressReporter.Run("dsm", opts.Iterations, (report, token) => trainer.Run(isResume, report, token, outPath + ".tb"));
            AnsiConsole.MarkupLine(Markup.Escape($"iteration {reached}, loss {trainer.LastLoss:F4}; checkpoint {outPath}"));
            return Stopped(reached, opts.Iterations, outPath);
        }));
        return cmd;
    }

    internal static long Positive(long v, string name) =>
        v > 0 ? v : throw new AdpException($"{name}: expected a positive integer, got {v}");

    /// <summary>Exit code of a training: 0 when it reached its last iteration, <see cref="EvalCommands.Interrupted"/> when
    /// Ctrl-C or SIGTERM stopped it first (the checkpoint is written), so scripts and job schedulers can tell the two apart.</summary>
    internal static int Stopped(long reached, long total, string outPath)
    {
        if (reached >= total) return 0;
        Console.Error.WriteLine($"adp: interrupted at iteration {reached} of {total}; the checkpoint {outPath} is written: rerun with --resume to continue");
        return EvalCommands.Interrupted;
    }

    /// <summary>A resumed training keeps its checkpoint's settings; options given anyway are named, so a user does not believe
    /// they took effect.</summary>
    internal static void NoteIgnoredOnResume(ParseResult parse, IEnumerable<Option> options)
    {
        var given = options.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
        if (given.Count > 0)
            Console.Error.WriteLine($"adp: note: --resume continues with the checkpoint's settings; ignored: {string.Join(", ", given)}");
    }
}
