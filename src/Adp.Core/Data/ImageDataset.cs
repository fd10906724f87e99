using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Data;

public enum Split { Train, Test }

/// <summary>
/// A split of a data set held as bytes (N×C×H×W, uint8) and labels (int64). Batches come out as float
/// tensors in [0,1]. <see cref="IsPartialTestSplit"/> is true when the test split is only a prefix of the
/// official one (CIFAR-10's first 1,000 test images); everything that reports on it must say so.
/// </summary>
public sealed class ImageDataset : IDisposable
{
    public DatasetSpec Spec { get; }
    public Split Split { get; }
    public bool IsPartialTestSplit { get; }
    /// <summary>uint8 tensor N×C×H×W.</summary>
    public Tensor Pixels { get; }
    /// <summary>int64 tensor N.</summary>
    public Tensor Labels { get; }
    public int Count => (int)Labels.shape[0];
    /// <summary>Where the images came from: a data directory, or "embedded" (the copy inside the library).</summary>
    public string Source { get; init; } = "data directory";

    public ImageDataset(DatasetSpec spec, Split split, Tensor pixels, Tensor labels, bool isPartialTestSplit = false)
    {
        if (pixels.dtype != ScalarType.Byte || pixels.dim() != 4)
            throw new ArgumentException("pixels must be a uint8 N×C×H×W tensor");
        if (labels.shape[0] != pixels.shape[0])
            throw new ArgumentException($"{pixels.shape[0]} images but {labels.shape[0]} labels");
        Spec = spec; Split = split; Pixels = pixels; Labels = labels; IsPartialTestSplit = isPartialTestSplit;
    }

    /// <summary>Size of the split this one was cut from with <see cref="Take"/> (null when not cut).</summary>
    public int? TakenFrom { get; init; }

    /// <summary>The split's name in descriptions: "train", "test", or "validation" for a held-out tail of train.</summary>
    public string SplitName { get; init; } = "";

    private string NameOfSplit => SplitName.Length > 0 ? SplitName : Split.ToString().ToLowerInvariant();

    /// <summary>A description for reports, e.g. "mnist test split, first 64 images"; it always says when the test
    /// split is partial or the embedded copy.</summary>
    public string Description =>
        $"{Spec.Name} {NameOfSplit} split" +
        (TakenFrom is null ? $" ({Count} images)" : $", first {Count} images") +
        (IsPartialTestSplit ? $" [partial test split: only the first {TakenFrom ?? Count} of 10000 test images are available]" : "") +
        (Source == "embedded" ? " [embedded copy]" : "");

    /// <summary>Images [start, start+count) as float32 in [0,1] on <paramref name="device"/>.</summary>
    public Tensor Images(int start, int count, Device? device = null)
    {
        using var slice = Pixels.narrow(0, start, count);
        return ToFloat(slice, device);
    }

    public Tensor Images(Tensor indices, Device? device = null)
    {
        using var sel = Pixels.index_select(0, indices);
        return ToFloat(sel, device);
    }

    private static Tensor ToFloat(Tensor bytes, Device? device)
    {
        var scaled = bytes.to(ScalarType.Float32).div_(RootedScalars.Float255);  // held: see RootedScalars
        if (device is null || device.type == DeviceType.CPU) return scaled;
        using (scaled) return scaled.to(device);
    }

    /// <summary>The first <paramref name="count"/> records as a new data set (e.g. the first N test images).</summary>
    public ImageDataset Take(int count)
    {
        if (count <= 0 || count > Count)
            throw new AdpException($"--images: expected 1..{Count} for {Description}, got {count}");
        return new ImageDataset(Spec, Split, Pixels.narrow(0, 0, count).clone(), Labels.narrow(0, 0, count).clone(), IsPartialTestSplit)
            { Source = Source, TakenFrom = TakenFrom ?? Count, SplitName = SplitName };
    }

    /// <summary>The validation split: the last <paramref name="count"/> training records, which the toolkit's trainers hold
    /// out (`--validation-images` for classifiers, `--train-images N−count` for score models). Tune on it, never on test.</summary>
    public ImageDataset ValidationTail(int count)
    {
        if (Split != Split.Train) throw new AdpException($"{Description}: the validation split is cut from the training split");
        if (count <= 0 || count >= Count) throw new AdpException($"--validation-images: expected 1..{Count - 1}, got {count}");
        return new ImageDataset(Spec, Split, Pixels.narrow(0, Count - count, count).clone(), Labels.narrow(0, Count - count, count).clone())
            { Source = Source, SplitName = $"validation (last {count} training images)" };
    }

    public void Dispose()
    {
        Pixels.Dispose();
        Labels.Dispose();
    }
}
