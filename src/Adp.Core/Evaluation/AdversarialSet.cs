using Adp.IO;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>
/// Saved adversarial examples of one attack cell: a safetensors file with <c>images</c> (N×C×H×W float32 in [0,1]),
/// <c>indices</c> (N int64, data set test indices) and <c>labels</c> (N int64), plus metadata naming the attack, its
/// protocol, seed and the model it was computed against. `adp eval replay` re-evaluates such a file.
/// </summary>
public static class AdversarialSet
{
    /// <summary>Adds (or replaces, by index) rows of the file at <paramref name="path"/>, written atomically. With
    /// <paramref name="skipped"/> (or once the file has them), a <c>skipped</c> tensor (N uint8) marks the rows whose image
    /// was not attacked (<see cref="AttackSpec.SkipMisclassified"/>: the clean image, counted as not robust).</summary>
    public static void Append(string path, IReadOnlyList<int> indices, Tensor labels, Tensor images, IReadOnlyDictionary<string, string> meta,
        IReadOnlySet<int>? skipped = null)
    {
        using var scope = NewDisposeScope();
        var newIdx = tensor(indices.Select(i => (long)i).ToArray());
        Tensor allImages = images.detach().cpu().to(ScalarType.Float32), allLabels = labels.cpu().to(ScalarType.Int64), allIdx = newIdx;
        Tensor? allSkipped = skipped is null ? null : tensor(indices.Select(i => (byte)(skipped.Contains(i) ? 1 : 0)).ToArray());
        if (File.Exists(path))
        {
            using var old = SafeTensors.Load(path);
            var replaced = indices.ToHashSet();
            var keep = old.Get("indices").data<long>().ToArray().Select((v, i) => (v, i)).Where(p => !replaced.Contains((int)p.v))
                .Select(p => (long)p.i).ToArray();
            var k = tensor(keep);
            allImages = cat([old.Get("images").index_select(0, k), allImages]);
            allLabels = cat([old.Get("labels").index_select(0, k), allLabels]);
            allIdx = cat([old.Get("indices").index_select(0, k), allIdx]);
            if (allSkipped is not null || old.Tensors.ContainsKey("skipped"))
                allSkipped = cat([old.Tensors.TryGetValue("skipped", out var o) ? o.index_select(0, k) : zeros(keep.Length, ScalarType.Byte),
                    allSkipped ?? zeros(indices.Count, ScalarType.Byte)]);
        }
        var entries = new List<KeyValuePair<string, Tensor>> { new("images", allImages.contiguous()), new("indices", allIdx), new("labels", allLabels) };
        if (allSkipped is not null) entries.Add(new("skipped", allSkipped));
        SafeTensors.Save(path, entries, meta);
    }

    /// <summary>The data set indices of the rows marked as not attacked (see <see cref="Append"/>); empty when none.</summary>
    public static HashSet<long> SkippedIndices(string path)
    {
        using var f = SafeTensors.Load(path);
        if (!f.Tensors.TryGetValue("skipped", out var marks)) return [];
        var idx = f.Get("indices").data<long>().ToArray();
        var m = marks.to(ScalarType.Byte).data<byte>().ToArray();
        if (m.Length != idx.Length) throw new AdpException($"{path}: expected one skipped mark per index, got {m.Length} for {idx.Length}");
        return idx.Where((_, i) => m[i] != 0).ToHashSet();
    }

    /// <summary>Reads a file written by <see cref="Append"/>; throws <see cref="AdpException"/> naming what is wrong.</summary>
    public static (Tensor Images, Tensor Indices, Tensor Labels, IReadOnlyDictionary<string, string> Meta) Read(string path)
    {
        using var f = SafeTensors.Load(path);
        var images = f.Get("images");
        var indices = f.Get("indices");
        var labels = f.Get("labels");
        if (images.dim() != 4 || indices.dim() != 1 || labels.dim() != 1 || images.shape[0] != indices.shape[0] || labels.shape[0] != indices.shape[0])
            throw new AdpException($"{path}: expected images N×C×H×W with N indices and N labels");
        return (images.to(ScalarType.Float32).clone(), indices.to(ScalarType.Int64).clone(), labels.to(ScalarType.Int64).clone(), f.Metadata);
    }
}
