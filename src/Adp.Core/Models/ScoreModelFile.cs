using TorchSharp;
using System.Text.Json;
using Adp.IO;
using static TorchSharp.torch;

namespace Adp.Models;

/// <summary>Which weights of a checkpoint purification uses: the raw ones (the paper's choice) or the EMA.</summary>
public enum WeightsChoice { Model, Ema }

/// <summary>A trained score model loaded from a checkpoint, with what its metadata says about it.</summary>
public sealed record ScoreModelInfo(string Path, ScoreModelConfig Config, string Dataset, long Iteration, long Seed,
    WeightsChoice Weights, IReadOnlyDictionary<string, string> Metadata);

/// <summary>Loading and exporting score-model checkpoints (kind "score-model").</summary>
public static class ScoreModelFile
{
    public const string Kind = "score-model";

    public static (Ncsnv2 Net, ScoreModelInfo Info) Load(string path, WeightsChoice? weights = null, Device? device = null)
    {
        using var f = Checkpoint.Open(path, Kind);
        ScoreModelConfig config;
        try { config = JsonSerializer.Deserialize<ScoreModelConfig>(Checkpoint.Require(f, "config"))!; }
        catch (JsonException) { throw new AdpException($"{path}: checkpoint metadata 'config' is not a valid score-model configuration"); }
        var choice = weights ?? (f.Metadata.TryGetValue("purification_weights", out var w) && w == "ema" ? WeightsChoice.Ema : WeightsChoice.Model);
        var net = new Ncsnv2(config);
        StateDictLoader.Load(net, f.Tensors, choice == WeightsChoice.Ema ? "ema." : "model.", path);
        if (device is not null) net.to(device);
        net.eval();
        var info = new ScoreModelInfo(path, config, f.Metadata.GetValueOrDefault("dataset", "?"),
            long.Parse(f.Metadata.GetValueOrDefault("iteration", "0")), long.Parse(f.Metadata.GetValueOrDefault("seed", "0")),
            choice, f.Metadata);
        return (net, info);
    }

    /// <summary>Imports PyTorch NCSNv2 weights (names as in the official code, optional "score."/"module." prefix)
    /// from a safetensors file.</summary>
    public static Ncsnv2 ImportPyTorch(string safetensorsPath, ScoreModelConfig config)
    {
        using var f = SafeTensors.Load(safetensorsPath);
        var net = new Ncsnv2(config);
        var prefix = StateDictLoader.DetectPrefix(net, f.Tensors, "score.", "module.");
        StateDictLoader.Load(net, f.Tensors, prefix, safetensorsPath);
        net.eval();
        return net;
    }

    /// <summary>Writes the chosen weights in PyTorch naming (plus the σ levels as "sigmas"), loadable by the
    /// official NCSNv2 code after conversion with safetensors.torch.load_file.</summary>
    public static void ExportSafeTensors(Ncsnv2 net, string outPath, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var sigmas = tensor(net.Config.Sigmas().Select(s => (float)s).ToArray());
        var tensors = net.state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value)).ToList();
        tensors.Add(new("sigmas", sigmas));
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>())
        {
            ["config"] = JsonSerializer.Serialize(net.Config),
        };
        SafeTensors.Save(outPath, tensors, meta);
    }
}
