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
        try
        {
            config = JsonSerializer.Deserialize<ScoreModelConfig>(Checkpoint.Require(f, "config"))
                     ?? throw new JsonException("null");
        }
        catch (JsonException) { throw new AdpException($"{path}: checkpoint metadata 'config' is not a valid score-model configuration"); }
        CheckConfig(f, config);
        long iteration = Checkpoint.Integer(f, "iteration", 0), seed = Checkpoint.Integer(f, "seed", 0);
        var choice = weights ?? (f.Metadata.TryGetValue("purification_weights", out var w) && w == "ema" ? WeightsChoice.Ema : WeightsChoice.Model);
        var net = new Ncsnv2(config);
        StateDictLoader.Load(net, f.Tensors, choice == WeightsChoice.Ema ? "ema." : "model.", path);
        if (device is not null) net.to(device);
        net.eval();
        var info = new ScoreModelInfo(path, config, f.Metadata.GetValueOrDefault("dataset", "?"),
            iteration, seed, choice, f.Metadata);
        return (net, info);
    }

    /// <summary>Refuses a configuration that is invalid, or that needs more weights than <paramref name="f"/> holds,
    /// before the network is built (see <see cref="Checkpoint.RequireElements"/>).</summary>
    private static void CheckConfig(SafeTensors.File f, ScoreModelConfig config)
    {
        try { config.Validate(); }
        catch (AdpException e) { throw new AdpException($"{f.Path}: invalid score-model configuration ({e.Message})"); }
        Checkpoint.RequireElements(f, ModelSize.ScoreModelElements(config), $"an NCSNv2 with ngf {config.Ngf}");
    }

    /// <summary>Imports PyTorch NCSNv2 weights (names as in the official code, optional "score."/"module." prefix)
    /// from a safetensors file.</summary>
    public static Ncsnv2 ImportPyTorch(string safetensorsPath, ScoreModelConfig config)
    {
        using var f = SafeTensors.Load(safetensorsPath);
        return ImportPyTorch(f, config);
    }

    /// <summary>As above from tensors already read (e.g. <see cref="OfficialCheckpoint.Read"/>).</summary>
    public static Ncsnv2 ImportPyTorch(SafeTensors.File f, ScoreModelConfig config)
    {
        CheckConfig(f, config);
        var net = new Ncsnv2(config);
        var prefix = StateDictLoader.DetectPrefix(net, f.Tensors, "score.", "module.");
        StateDictLoader.Load(net, f.Tensors, prefix, f.Path);
        net.eval();
        return net;
    }

    /// <summary>Architectures selectable by name in `adp import --config`: the paper's CIFAR-10 model (ngf 128, 232 levels
    /// from σ 50 to 0.01) and the data sets' defaults.</summary>
    public static ScoreModelConfig Named(string name) => name switch
    {
        "paper-cifar10" => ScoreModelConfig.Cifar10,
        "mnist" or "fashion-mnist" or "cifar-10" => ScoreModelConfig.ForDataset(name),
        _ => throw new AdpException($"--config: unknown architecture '{name}' (known: paper-cifar10, mnist, fashion-mnist, cifar-10)"),
    };

    /// <summary>
    /// The configuration of PyTorch NCSNv2 weights in a safetensors file, starting from the data set's
    /// <paramref name="defaults"/>: ngf from begin_conv.weight, and the σ schedule from the file's "sigmas" tensor
    /// (any float dtype, read in double precision; it must be positive, decreasing and geometric, as adp's NCSNv2
    /// computes its levels from σ_1, σ_L and L). When the file's metadata also states an adp configuration
    /// ("config", as <see cref="ExportSafeTensors"/> writes it) whose levels agree with the tensor to the tensor's
    /// precision, its exact σ_1, σ_L and L are used, so that BF16/F16 rounding of the levels does not shift the
    /// schedule; without a tensor, the stated configuration's schedule is used. <c>Note</c> says when the levels
    /// come from a half-precision tensor alone (so are rounded to its precision).
    /// </summary>
    public static (ScoreModelConfig Config, string? Note) ReadPyTorchConfig(SafeTensors.File file, ScoreModelConfig defaults)
    {
        var begin = file.Tensors.FirstOrDefault(kv => kv.Key.EndsWith("begin_conv.weight")).Value
                    ?? throw new AdpException($"{file.Path}: no begin_conv.weight tensor; not an NCSNv2 state_dict");
        if (begin.dim() != 4) throw new AdpException($"{file.Path}: begin_conv.weight has {begin.dim()} dimensions, expected 4");
        var config = defaults with { Ngf = (int)begin.shape[0] };
        ScoreModelConfig? stated = null;
        if (file.Metadata.TryGetValue("config", out var json))
        {
            // Only a configuration in adp's own format counts; other tools may use the key for something else.
            try { stated = JsonSerializer.Deserialize<ScoreModelConfig>(json); }
            catch (JsonException) { }
        }
        if (stated is not null)
            config = config with { SigmaMax = stated.SigmaMax, SigmaMin = stated.SigmaMin, NumLevels = stated.NumLevels };

        var (name, sig) = file.Tensors.FirstOrDefault(kv => kv.Key == "sigmas" || kv.Key.EndsWith(".sigmas"));
        if (sig is null) return (config, null);
        string what = $"{file.Path}: tensor '{name}'";
        if (!sig.is_floating_point()) throw new AdpException($"{what}: σ levels must be floating point, got {sig.dtype}");
        if (sig.dim() != 1 || sig.shape[0] < 2)
            throw new AdpException($"{what}: expected a 1-D tensor of at least 2 σ levels, got shape [{string.Join(",", sig.shape)}]");
        using var wide = sig.to(ScalarType.Float64);
        var levels = wide.data<double>().ToArray();
        for (int i = 0; i < levels.Length; i++)
            if (!double.IsFinite(levels[i]) || levels[i] <= 0 || (i > 0 && levels[i] >= levels[i - 1]))
                throw new AdpException(
                    $"{what}: σ levels must be positive, finite and decreasing (σ_1 > … > σ_L); level {i + 1} is {levels[i]}");
        // Relative error a level can carry after rounding to the tensor's dtype (and recomputing the schedule).
        double tol = sig.dtype switch
        {
            ScalarType.BFloat16 => 1.0 / 128, ScalarType.Float16 => 1.0 / 512, ScalarType.Float32 => 1e-5, _ => 1e-9,
        };
        static bool Agree(double[] a, double[] b, double tol) =>
            a.Length == b.Length && a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= tol * p.Second);
        var fromTensor = config with { SigmaMax = levels[0], SigmaMin = levels[^1], NumLevels = levels.Length };
        var geometric = fromTensor.Sigmas();
        if (!Agree(levels, geometric, tol))
        {
            int k = Enumerable.Range(0, levels.Length).MaxBy(i => Math.Abs(levels[i] - geometric[i]) / geometric[i]);
            throw new AdpException($"{what}: σ levels are not geometric (level {k + 1} is {levels[k]:G6}, a geometric schedule from "
                                   + $"{levels[0]:G6} to {levels[^1]:G6} has {geometric[k]:G6}); adp's NCSNv2 uses geometric levels");
        }
        if (stated is not null && Agree(levels, stated.Sigmas(), tol)) return (config, null);
        string? note = sig.dtype is ScalarType.BFloat16 or ScalarType.Float16
            ? $"σ levels read from a {sig.dtype} tensor, rounded to its precision (σ_1 = {levels[0]:G6}, σ_L = {levels[^1]:G6}); "
              + "give --sigma-max and --sigma-min for exact values"
            : null;
        return (fromTensor, note);
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
