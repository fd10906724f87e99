using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// Copies PyTorch <c>state_dict</c> tensors (e.g. from a safetensors file) into a module whose parameter and
/// buffer names follow the PyTorch ones. Names in the file may carry a prefix ("score.", "clf.", "module.").
/// Values are converted to the module's dtype: half-precision (F16, BF16) or F64 weights are read into float32.
/// Missing or misshapen tensors, and integer or boolean tensors for floating-point weights, are errors that list what
/// is wrong; extra tensors are ignored.
/// </summary>
public static class StateDictLoader
{
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string prefix, string origin)
    {
        var target = module.state_dict();
        var missing = new List<string>();
        var misshapen = new List<string>();
        var mistyped = new List<string>();
        foreach (var (name, t) in target)
        {
            if (!source.TryGetValue(prefix + name, out var s)) { missing.Add(prefix + name); continue; }
            if (!s.shape.SequenceEqual(t.shape))
                misshapen.Add($"{prefix + name} is [{string.Join(",", s.shape)}], expected [{string.Join(",", t.shape)}]");
            else if (t.is_floating_point() && !s.is_floating_point())
                mistyped.Add($"{prefix + name} is {s.dtype}, expected floating point");
        }
        if (missing.Count > 0)
            throw new AdpException($"{origin}: {missing.Count} tensor(s) missing, e.g. {string.Join(", ", missing.Take(3))}");
        if (misshapen.Count > 0)
            throw new AdpException($"{origin}: {misshapen.Count} tensor(s) with the wrong shape, e.g. {string.Join("; ", misshapen.Take(2))}");
        if (mistyped.Count > 0)
            throw new AdpException($"{origin}: {mistyped.Count} tensor(s) of the wrong kind, e.g. {string.Join("; ", mistyped.Take(2))}");
        using var _ = no_grad();
        foreach (var (name, t) in target)
        {
            var src = source[prefix + name];
            var s = src.to(t.dtype, t.device);
            t.copy_(s);
            if (!ReferenceEquals(s, src)) s.Dispose();
        }
    }

    /// <summary>The prefix under which the file stores the module's first parameter, found by suffix match
    /// (so "score.", "module." or none all work).</summary>
    public static string DetectPrefix(nn.Module module, IReadOnlyDictionary<string, Tensor> source, params string[] candidates)
    {
        var first = module.state_dict().Keys.First();
        foreach (var p in candidates.Append(""))
            if (source.ContainsKey(p + first)) return p;
        return candidates.FirstOrDefault() ?? "";
    }
}
