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
        CheckConfig(f, config);
        var net = Classifier.Create(config);
        StateDictLoader.Load(net, f.Tensors, "model.", path);
        if (device is not null) net.to(device);
        net.eval();
        return (net, new ClassifierInfo(path, config, f.Metadata.GetValueOrDefault("dataset", "?"), f.Metadata));
    }

    /// <summary>Refuses a configuration that is invalid, or that needs more weights than <paramref name="f"/> holds,
    /// before the network is built (see <see cref="Checkpoint.RequireElements"/>).</summary>
    private static void CheckConfig(SafeTensors.File f, ClassifierConfig config)
    {
        try { config.Validate(); }
        catch (AdpException e) { throw new AdpException($"{f.Path}: invalid classifier configuration ({e.Message})"); }
        Checkpoint.RequireElements(f, ModelSize.ClassifierElements(config), config.Describe());
    }

    /// <summary>Imports a PyTorch state_dict (safetensors; optional "clf."/"module." prefix) for an architecture.</summary>
    public static Classifier ImportPyTorch(string safetensorsPath, ClassifierConfig config)
    {
        using var f = SafeTensors.Load(safetensorsPath);
        CheckConfig(f, config);
        var net = Classifier.Create(config);
        StateDictLoader.Load(net, f.Tensors, StateDictLoader.DetectPrefix(net, f.Tensors, "clf.", "module."), safetensorsPath);
        net.eval();
        return net;
    }
}
