using static TorchSharp.torch;

namespace Adp.IO;

/// <summary>
/// Copies PyTorch <c>state_dict</c> tensors (e.g. from a safetensors file) into a module whose parameter and
/// buffer names follow the PyTorch ones. Names in the file may carry a prefix ("score.", "clf.", "module.").
/// Missing or misshapen tensors are errors that list what is wrong; extra tensors are ignored.
/// </summary>
public static class StateDictLoader
{
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string prefix, string origin)
    {
        var target = module.state_dict();
        var missing = new List<string>();
        var misshapen = new List<string>();
        foreach (var (name, t) in target)
        {
            if (!source.TryGetValue(prefix + name, out var s)) { missing.Add(prefix + name); continue; }
            if (!s.shape.SequenceEqual(t.shape))
                misshapen.Add($"{prefix + name} is [{string.Join(",", s.shape)}], expected [{string.Join(",", t.shape)}]");
        }
        if (missing.Count > 0)
            throw new AdpException($"{origin}: {missing.Count} tensor(s) missing, e.g. {string.Join(", ", missing.Take(3))}");
        if (misshapen.Count > 0)
            throw new AdpException($"{origin}: {misshapen.Count} tensor(s) with the wrong shape, e.g. {string.Join("; ", misshapen.Take(2))}");
        using var _ = no_grad();
        foreach (var (name, t) in target)
        {
            var s = source[prefix + name];
            t.copy_(s.to(t.dtype).to(t.device));
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
