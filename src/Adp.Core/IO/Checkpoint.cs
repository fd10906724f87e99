using System.Reflection;
using System.Text.Json;
using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// One-file checkpoints: a safetensors file whose tensors are the weights of one or more modules (under
/// prefixes such as "model." and "ema."), optionally the optimizer state as a byte tensor, and whose
/// metadata says what the file is ("adp.kind"), the architecture, data set, iteration, seed and version.
/// Written atomically, so an interrupted write leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    public const string KindKey = "adp.kind";
    public const string VersionKey = "adp.version";
    public const string OptimizerTensor = "optimizer.state";

    public static string ToolkitVersion =>
        typeof(Checkpoint).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static void Save(string path, string kind, IEnumerable<(string Prefix, nn.Module Module)> modules,
        IDictionary<string, string> metadata, byte[]? optimizerState = null)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (prefix, module) in modules)
            foreach (var (name, t) in module.state_dict())
                tensors.Add(new(prefix + name, t));
        Tensor? opt = null;
        if (optimizerState is not null)
        {
            opt = tensor(optimizerState, [optimizerState.Length], ScalarType.Byte);
            tensors.Add(new(OptimizerTensor, opt));
        }
        var meta = new Dictionary<string, string>(metadata) { [KindKey] = kind, [VersionKey] = ToolkitVersion };
        SafeTensors.Save(path, tensors, meta);
        opt?.Dispose();
    }

    /// <summary>Opens a checkpoint and checks that it is of the expected kind.</summary>
    public static SafeTensors.File Open(string path, string expectedKind)
    {
        var file = SafeTensors.Load(path);
        if (!file.Metadata.TryGetValue(KindKey, out var kind))
        {
            file.Dispose();
            throw new AdpException($"{path}: not an adp checkpoint (no '{KindKey}' metadata); PyTorch weights are imported with 'adp import'");
        }
        if (kind != expectedKind)
        {
            file.Dispose();
            throw new AdpException($"{path}: is a {kind} checkpoint, expected a {expectedKind}");
        }
        return file;
    }

    /// <summary>
    /// Refuses to build a network of <paramref name="needed"/> tensor elements (parameters and buffers, see
    /// <see cref="Models.ModelSize"/>) from <paramref name="file"/> unless the file holds at least as many: it must
    /// hold all of them to load, so a configuration in the metadata that claims more (a corrupted or hostile file) is
    /// refused before anything is allocated; what is built is then bounded by the file's size.
    /// </summary>
    public static void RequireElements(SafeTensors.File file, long needed, string what)
    {
        long have = file.Tensors.Values.Sum(t => t.numel());
        if (needed > have)
            throw new AdpException($"{file.Path}: {what} needs {needed} weights, the file holds {have} (corrupted configuration or truncated weights)");
    }

    public static byte[] OptimizerBytes(optim.Optimizer optimizer)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true))
            ((TorchSharp.Modules.OptimizerHelper)optimizer).save_state_dict(w);
        return ms.ToArray();
    }

    /// <summary>Restores the optimizer state saved by <see cref="OptimizerBytes"/>; what TorchSharp's reader throws on
    /// bytes it cannot read (another network's state, or corrupted) is an <see cref="AdpException"/> naming the file.</summary>
    public static void RestoreOptimizer(optim.Optimizer optimizer, SafeTensors.File file)
    {
        var saved = file.Get(OptimizerTensor);
        if (saved.dtype != ScalarType.Byte || saved.dim() != 1)
            throw new AdpException($"{file.Path}: tensor '{OptimizerTensor}' must be a 1-D U8 tensor, got {saved.dtype} [{string.Join(",", saved.shape)}]");
        var bytes = saved.bytes.ToArray();
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes));
            ((TorchSharp.Modules.OptimizerHelper)optimizer).load_state_dict(r);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or InvalidDataException or ArgumentException or FormatException
                                      or OverflowException or InvalidOperationException or System.Runtime.InteropServices.ExternalException)
        {
            throw new AdpException($"{file.Path}: optimizer state is corrupted ({e.Message.Split('\n')[0]})", e);
        }
    }

    /// <summary>Writes a copy without the optimizer state (for shipping; such a copy cannot be resumed), with
    /// <paramref name="extraMetadata"/> added or replaced.</summary>
    public static void Strip(string path, string outPath, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        using var f = SafeTensors.Load(path);
        if (!f.Metadata.ContainsKey(KindKey)) throw new AdpException($"{path}: not an adp checkpoint");
        var meta = new Dictionary<string, string>(f.Metadata) { ["stripped"] = "optimizer state removed; not resumable" };
        foreach (var (k, v) in extraMetadata ?? new Dictionary<string, string>()) meta[k] = v;
        SafeTensors.Save(outPath, f.Tensors.Where(kv => kv.Key != OptimizerTensor), meta);
    }

    /// <summary>An integer metadata value (<paramref name="fallback"/> when absent), or an error naming the key.</summary>
    public static long Integer(SafeTensors.File f, string key, long fallback) =>
        !f.Metadata.TryGetValue(key, out var v) ? fallback
        : long.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long n) ? n
        : throw new AdpException($"{f.Path}: checkpoint metadata '{key}' must be an integer, got '{v}'");

    /// <summary>A floating-point metadata value (<paramref name="fallback"/> when absent), or an error naming the key.</summary>
    public static double Number(SafeTensors.File f, string key, double fallback) =>
        !f.Metadata.TryGetValue(key, out var v) ? fallback
        : double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double x) ? x
        : throw new AdpException($"{f.Path}: checkpoint metadata '{key}' must be a number, got '{v}'");

    /// <summary>A metadata value holding JSON, read as <typeparamref name="T"/>; an error naming the key when it is
    /// absent or not such JSON.</summary>
    public static T ReadJson<T>(SafeTensors.File f, string key, string what) where T : class
    {
        var text = Require(f, key);
        try { return JsonSerializer.Deserialize<T>(text) ?? throw new JsonException("null"); }
        catch (JsonException) { throw new AdpException($"{f.Path}: checkpoint metadata '{key}' is not valid {what}"); }
    }

    public static string Require(SafeTensors.File f, string key) =>
        f.Metadata.TryGetValue(key, out var v) ? v : throw new AdpException($"{f.Path}: checkpoint metadata lacks '{key}'");
}
