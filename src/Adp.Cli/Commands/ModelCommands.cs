using System.CommandLine;
using System.Text.Json;
using Adp.Models;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static class ModelCommands
{
    public static Command CreateExport()
    {
        var score = new Option<string>("--score") { Description = "score-model checkpoint", Required = true };
        var weights = new Option<WeightsChoice?>("--weights") { Description = "Model or Ema (default: the checkpoint's choice)" };
        var output = new Option<string>("--out") { Description = "safetensors file to write", Required = true };
        var cmd = new Command("export", "Export a score model's weights as safetensors with PyTorch NCSNv2 names");
        foreach (var o in new Option[] { score, weights, output }) cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var (net, info) = ScoreModelFile.Load(parse.GetValue(score)!, parse.GetValue(weights));
            using var _ = net;
            ScoreModelFile.ExportSafeTensors(net, parse.GetValue(output)!, new Dictionary<string, string>
            {
                ["source"] = info.Path, ["dataset"] = info.Dataset, ["iteration"] = info.Iteration.ToString(), ["weights"] = info.Weights.ToString(),
            });
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {parse.GetValue(output)}"));
            return 0;
        }));
        return cmd;
    }

    public static Command CreateStrip()
    {
        var input = new Argument<string>("checkpoint") { Description = "a score-model or classifier checkpoint" };
        var output = new Option<string>("--out") { Description = "where to write the copy", Required = true };
        var preset = new Option<string?>("--preset") { Description = "record this purifier preset as the score model's recommended one" };
        var weights = new Option<Models.WeightsChoice?>("--weights") { Description = "record which weights purification uses by default: Model or Ema" };
        var cmd = new Command("strip", "Copy a checkpoint without its optimizer state (smaller, for shipping; not resumable)");
        cmd.Arguments.Add(input);
        cmd.Options.Add(output);
        cmd.Options.Add(preset);
        cmd.Options.Add(weights);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var extra = new Dictionary<string, string>();
            if (parse.GetValue(preset) is { } name)
            {
                Purification.PurifierPresets.Get(name);  // refuses unknown names
                extra[Purification.PurifierPresets.MetadataKey] = name;
            }
            if (parse.GetValue(weights) is { } w) extra["purification_weights"] = w == Models.WeightsChoice.Ema ? "ema" : "model";
            IO.Checkpoint.Strip(parse.GetValue(input)!, parse.GetValue(output)!, extra);
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {parse.GetValue(output)} ({new FileInfo(parse.GetValue(output)!).Length / 1e6:F1} MB)"));
            return 0;
        }));
        return cmd;
    }

    public static Command CreateImport()
    {
        var input = new Option<string?>("--safetensors") { Description = "PyTorch NCSNv2 state_dict as safetensors" };
        var official = new Option<string?>("--checkpoint")
        {
            Description = "an NCSNv2 checkpoint as the official NCSNv2 / ADP code saves it (torch.save of [state_dict, optimizer, epoch, step, EMA])",
        };
        var weightsOpt = new Option<WeightsChoice>("--weights") { Description = "with --checkpoint: Model (raw, the paper's choice) or Ema", DefaultValueFactory = _ => WeightsChoice.Model };
        var named = new Option<string?>("--config") { Description = "architecture by name: paper-cifar10 (ngf 128, 232 levels σ 50→0.01), mnist, fashion-mnist, cifar-10" };
        var dataset = new Option<string>("--dataset") { Description = "data set the model was trained on", Required = true };
        var ngf = new Option<int?>("--ngf") { Description = "base width (default: from begin_conv.weight)" };
        var sigmaMax = new Option<double?>("--sigma-max") { Description = "σ_1 (default: from the file's sigmas, else the data set's)" };
        var sigmaMin = new Option<double?>("--sigma-min") { Description = "σ_L (default: from the file's sigmas, else the data set's)" };
        var levels = new Option<int?>("--levels") { Description = "L, the number of σ levels (default: as --sigma-max)" };
        var output = new Option<string>("--out") { Description = "adp checkpoint to write", Required = true };
        var cmd = new Command("import", "Import PyTorch NCSNv2 weights (safetensors, or an official NCSNv2/ADP checkpoint) as an adp score-model checkpoint");
        foreach (var o in new Option[] { input, official, weightsOpt, named, dataset, ngf, sigmaMax, sigmaMin, levels, output }) cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            if ((parse.GetValue(input) is null) == (parse.GetValue(official) is null))
                throw new AdpException("import: give exactly one of --safetensors FILE and --checkpoint FILE.pth");
            var path = parse.GetValue(input) ?? parse.GetValue(official)!;
            var spec = Data.DatasetRegistry.Get(parse.GetValue(dataset)!);
            var d = parse.GetValue(named) is { } n ? ScoreModelFile.Named(n) : ScoreModelConfig.ForDataset(spec.Name);
            using var source = parse.GetValue(official) is not null ? IO.OfficialCheckpoint.Read(path, parse.GetValue(weightsOpt)) : IO.SafeTensors.Load(path);
            var (read, note) = ScoreModelFile.ReadPyTorchConfig(source, d);
            var cfg = read with
            {
                Ngf = parse.GetValue(ngf) ?? read.Ngf,
                SigmaMax = parse.GetValue(sigmaMax) ?? read.SigmaMax,
                SigmaMin = parse.GetValue(sigmaMin) ?? read.SigmaMin,
                NumLevels = parse.GetValue(levels) ?? read.NumLevels,
            };
            if (note is not null && parse.GetValue(sigmaMax) is null && parse.GetValue(sigmaMin) is null)
                AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
            using var net = ScoreModelFile.ImportPyTorch(source, cfg);
            var meta = new Dictionary<string, string>
            {
                ["config"] = JsonSerializer.Serialize(cfg), ["dataset"] = spec.Name, ["iteration"] = "0", ["seed"] = "0",
                ["purification_weights"] = "model", ["imported_from"] = Path.GetFileName(path),
            };
            if (parse.GetValue(official) is not null)
            {
                meta["iteration"] = source.Metadata.GetValueOrDefault("step", "0") is var st && st != "-1" ? st : "0";
                meta["imported_weights"] = parse.GetValue(weightsOpt).ToString();
                meta["imported_epoch"] = source.Metadata.GetValueOrDefault("epoch", "-1");
            }
            IO.Checkpoint.Save(parse.GetValue(output)!, ScoreModelFile.Kind, [("model.", net), ("ema.", net)], meta);
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {parse.GetValue(output)} ({cfg})"));
            return 0;
        }));
        return cmd;
    }
}
