using System.CommandLine;
using Adp.Data;
using Adp.Models;
using Adp.Purification;
using Spectre.Console;
using static TorchSharp.torch;

namespace Adp.Cli.Commands;

/// <summary>`adp purify` and `adp classify`: the defense on image files.</summary>
public static class PurifyCommands
{
    private static List<string> Inputs(string input)
    {
        if (File.Exists(input)) return [input];
        if (Directory.Exists(input))
        {
            var files = Directory.GetFiles(input).Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase)).Order().ToList();
            return files.Count > 0 ? files : throw new AdpException($"--input {input}: folder holds no .png files");
        }
        throw new AdpException($"--input {input}: no such file or folder");
    }

    private static Tensor ReadChecked(string path, ScoreModelConfig cfg)
    {
        var img = PngImages.Read(path, cfg.Channels);
        if (img.shape[2] != cfg.ImageSize || img.shape[3] != cfg.ImageSize)
            throw new AdpException($"{path}: image is {img.shape[3]}×{img.shape[2]}, the score model expects {cfg.ImageSize}×{cfg.ImageSize}");
        return img;
    }

    /// <summary>Original | noised | each step | purified, one row.</summary>
    private static List<Tensor> GridRow(Tensor original, PurificationResult r, int i) =>
        [original, .. Enumerable.Range(0, (int)r.Trajectory!.shape[0]).Select(t => r.Trajectory[t, i]), r.Images[i]];

    public static Command CreatePurify()
    {
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var input = new Option<string>("--input") { Description = "a PNG file or a folder of PNGs", Required = true };
        var output = new Option<string>("--out") { Description = "output folder", Required = true };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var purifier = new PurifierOptions();
        var cmd = new Command("purify", "Purify PNG images: noise injection and adaptive score ascent; writes the purified PNG and a grid (original | noised | steps | purified)");
        foreach (var o in new Option[] { score, input, output, seed }) cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (net, info) = ScoreModelFile.Load(parse.GetValue(score)!, null, device);
            using var _ = net;
            var files = Inputs(parse.GetValue(input)!);
            var outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var p = purifier.Build(parse, net, info.Metadata);
            using var g = new Generator((ulong)parse.GetValue(seed), CPU);
            var table = new Table().AddColumns("input", "steps", "final α", "purified", "grid");
            foreach (var file in files)
            {
                using var scope = NewDisposeScope();
                var x = ReadChecked(file, info.Config).to(device);
                using var r = p.Purify(x, g, keepTrajectory: true);
                var name = Path.GetFileNameWithoutExtension(file);
                var purifiedPath = Path.Combine(outDir, name + ".purified.png");
                var gridPath = Path.Combine(outDir, name + ".grid.png");
                PngImages.Write(purifiedPath, r.Images[0]);
                PngImages.WriteGrid(gridPath, [GridRow(x[0], r, 0)]);
                int steps = (int)r.StepsTaken[0].item<long>();
                table.AddRow(Markup.Escape(file), steps.ToString(), steps > 0 ? FinalStepSize(r.StepSizes).ToString("G3") : "-",
                    Markup.Escape(purifiedPath), Markup.Escape(gridPath));
            }
            AnsiConsole.MarkupLine(Markup.Escape($"{p.Describe()}, seed {parse.GetValue(seed)}, score model {info.Path}"));
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }

    /// <summary>The last non-zero step size of the first image: step sizes hold a row per step for ADP, one T-row block per
    /// stage (zero after each stage's stop) for re-injection, one row for Tweedie and Langevin.</summary>
    public static float FinalStepSize(Tensor stepSizes)
    {
        var taken = stepSizes.select(1, 0).to(ScalarType.Float32).data<float>().ToArray();
        return taken.LastOrDefault(a => a != 0);
    }

    public static Command CreateClassify()
    {
        var classifier = new Option<string>("--classifier") { Description = "classifier checkpoint", Required = true };
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var input = new Option<string>("--input") { Description = "a PNG file or a folder of PNGs", Required = true };
        var output = new Option<string?>("--out") { Description = "folder for the image grids (default: none)" };
        var runs = new Option<int>("--runs") { Description = "purification runs S", DefaultValueFactory = _ => 10 };
        var rule = new Option<DecisionRule>("--rule") { Description = "MeanSoftmax, LogitSum or MajorityVote", DefaultValueFactory = _ => DecisionRule.MeanSoftmax };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var purifier = new PurifierOptions();
        var cmd = new Command("classify", "Classify PNG images with the ADP defense: label, confidence and the votes of the S runs");
        foreach (var o in new Option[] { classifier, score, input, output, runs, rule, seed }) cmd.Options.Add(o);
        purifier.AddTo(cmd);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var device = TorchSharp.torch.device(CliSupport.ResolveDevice(parse));
            var (clf, cinfo, net, sinfo) = CliSupport.LoadDefense(parse.GetValue(classifier)!, parse.GetValue(score)!, device);
            using var _c = clf;
            using var _s = net;
            var classes = DatasetRegistry.All.FirstOrDefault(d => d.Name == cinfo.Dataset)?.ClassNames;
            var defense = new DefendedClassifier(clf, purifier.Build(parse, net, sinfo.Metadata), parse.GetValue(runs));
            var r = parse.GetValue(rule);
            using var g = new Generator((ulong)parse.GetValue(seed), CPU);
            var outDir = parse.GetValue(output);
            var table = new Table().AddColumns("input", "label", "confidence", "votes per run", "bare classifier");
            foreach (var file in Inputs(parse.GetValue(input)!))
            {
                using var scope = NewDisposeScope();
                var x = ReadChecked(file, sinfo.Config).to(device);
                using var o = defense.Classify(x, g);
                var scores = o.Scores(r)[0];
                long label = scores.argmax().item<long>();
                using TorchSharp.Scalar labelScalar = label;  // held through the native call (see RootedScalars)
                double conf = r == DecisionRule.MeanSoftmax ? scores[label].item<float>()
                    : o.RunPredictions()[.., 0].eq(labelScalar).to(ScalarType.Float32).mean().item<float>();
                var votes = o.RunPredictions()[.., 0].data<long>().ToArray();
                long bare;
                using (no_grad()) bare = clf.forward(x).argmax(1).item<long>();
                string Name(long k) => classes is null ? k.ToString() : $"{k} {classes[(int)k]}";
                table.AddRow(Markup.Escape(file), Markup.Escape(Name(label)), conf.ToString("P1"), string.Join(" ", votes), Markup.Escape(Name(bare)));
                Console.WriteLine($"classify {file} label={label} confidence={conf:F4} votes={string.Join(",", votes)}");
                if (outDir is not null)
                {
                    using var gr = new Generator((ulong)parse.GetValue(seed), CPU);
                    using var pr = defense.Purifier.Purify(x, gr, keepTrajectory: true);
                    PngImages.WriteGrid(Path.Combine(outDir, Path.GetFileNameWithoutExtension(file) + ".grid.png"), [GridRow(x[0], pr, 0)]);
                }
            }
            AnsiConsole.MarkupLine(Markup.Escape($"{defense.Purifier.Describe()}, S={defense.Runs}, rule {r}, seed {parse.GetValue(seed)}; confidence is the mean softmax probability (or the vote share)"));
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }
}
