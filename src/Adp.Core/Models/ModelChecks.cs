using Adp.Data;

namespace Adp.Models;

public static class ModelChecks
{
    /// <summary>A model trained for one image shape must not be run on another.</summary>
    public static void RequireImageShape(string modelPath, int channels, int size, DatasetSpec data)
    {
        if (channels != data.Channels || size != data.Height || size != data.Width)
            throw new AdpException($"{modelPath}: model expects {channels}×{size}×{size} images but {data.Name} has {data.Channels}×{data.Height}×{data.Width}");
    }

    /// <summary>A classifier must take the data set's image shape and predict its number of classes.</summary>
    public static void RequireClassifier(string modelPath, ClassifierConfig c, DatasetSpec data)
    {
        RequireImageShape(modelPath, c.Channels, c.ImageSize, data);
        if (c.NumClasses != data.ClassNames.Count)
            throw new AdpException($"{modelPath}: classifier predicts {c.NumClasses} classes but {data.Name} has {data.ClassNames.Count}");
    }

    /// <summary>Metadata key of a classifier checkpoint: how many of the last training images its training held out.</summary>
    public const string HeldOutKey = "validation_images";

    /// <summary>
    /// Tuning on the validation split (the last <paramref name="validationImages"/> training images) must not use images the
    /// classifier trained on: refused when the checkpoint records a smaller hold-out (<see cref="HeldOutKey"/>). Checkpoints
    /// without the key (trained before it was recorded) are not checked; docs/MODELS.md gives their hold-outs.
    /// </summary>
    /// <exception cref="AdpException">the classifier held out fewer images than the split takes.</exception>
    public static void RequireHeldOut(string modelPath, IReadOnlyDictionary<string, string> metadata, int validationImages)
    {
        if (!metadata.TryGetValue(HeldOutKey, out var text) || !int.TryParse(text, out int heldOut)) return;
        if (heldOut < validationImages)
            throw new AdpException($"--split validation: {modelPath} held out only the last {heldOut} training images and trained on the rest, " +
                                   $"so {validationImages - heldOut} of the last {validationImages} are images it saw; pass --validation-images {heldOut} or fewer");
    }
}
