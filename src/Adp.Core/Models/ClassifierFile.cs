using System.Text.Json;
using Adp.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Models;

public sealed record ClassifierInfo(string Path, ClassifierConfig Config, string Dataset, IReadOnlyDictionary<string, string> Metadata);

/// <summary>Loading classifier checkpoints (kind "classifier") and importing PyTorch weights.</summary>
public static class ClassifierFile
{
    public const string Kind = "classifier";

    public static (Classifier Net, ClassifierInfo Info) Load(string path, Device? device = null)
    {
        using var f = Checkpoint.Open(path, Kind);
        ClassifierConfig config;
        try { config = JsonSerializer.Deserialize<ClassifierConfig>(Checkpoint.Require(f, "config")) ?? throw new JsonException("null"); }
        catch (JsonException) { throw new AdpException($"{path}: checkpoint metadata 'config' is not a valid classifier configuration"); }
        var net = Classifier.Create(config);
        StateDictLoader.Load(net, f.Tensors, "model.", path);
        if (device is not null) net.to(device);
        net.eval();
        return (net, new ClassifierInfo(path, config, f.Metadata.GetValueOrDefault("dataset", "?"), f.Metadata));
    }

    /// <summary>Imports a PyTorch state_dict (safetensors; optional "clf."/"module." prefix) for an architecture.</summary>
    public static Classifier ImportPyTorch(string safetensorsPath, ClassifierConfig config)
    {
        using var f = SafeTensors.Load(safetensorsPath);
        var net = Classifier.Create(config);
        StateDictLoader.Load(net, f.Tensors, StateDictLoader.DetectPrefix(net, f.Tensors, "clf.", "module."), safetensorsPath);
        net.eval();
        return net;
    }
}
