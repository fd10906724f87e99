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

    /// <summary>
    /// Tuning on the validation split (the last <paramref name="validationImages"/> of the data set's
    /// <paramref name="trainSplitCount"/> training images) must not use images the classifier trained on. A classifier
    /// checkpoint records its training options in the metadata key "training" (JSON with TrainImages, ValidationImages):
    /// it trained on the first max(1, (TrainImages or all) − ValidationImages) images (ClassifierTrainer), so only the
    /// rest are unseen. Checkpoints without that record are not checked.
    /// </summary>
    /// <param name="remedy">what the user can do, for the message (e.g. "pass --validation-images N or fewer"; {0} is N).</param>
    /// <exception cref="AdpException">the validation split reaches into images the classifier trained on.</exception>
    public static void RequireHeldOut(string modelPath, IReadOnlyDictionary<string, string> metadata, int validationImages, int trainSplitCount,
        string remedy = "pass --validation-images {0} or fewer")
    {
        if (!metadata.TryGetValue("training", out var json)) return;
        int trainImages, heldOut;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (!root.TryGetProperty("ValidationImages", out var v) || !v.TryGetInt32(out heldOut)) return;
            trainImages = root.TryGetProperty("TrainImages", out var t) && t.TryGetInt32(out var n) ? n : 0;
        }
        catch (System.Text.Json.JsonException) { return; }
        int used = trainImages > 0 ? Math.Min(trainImages, trainSplitCount) : trainSplitCount;
        int trained = Math.Max(1, used - heldOut);
        int unseen = Math.Max(0, trainSplitCount - trained);
        if (validationImages <= unseen) return;
        throw new AdpException(unseen == 0
            ? $"--split validation: {modelPath} trained on every training image; evaluate it on the test split"
            : $"--split validation: {modelPath} trained on the first {trained} training images, so only the last {unseen} are unseen " +
              $"and {validationImages - unseen} of the last {validationImages} are images it saw; " + string.Format(remedy, unseen));
    }

    /// <summary>A score model purifies images of the data set it was trained on: a Fashion-MNIST model run on MNIST digits
    /// (same shape) would silently measure a mismatched defense.</summary>
    /// <exception cref="AdpException">both data sets are recorded and differ.</exception>
    public static void RequireSameDataset(string classifierPath, string classifierDataset, string scorePath, string scoreDataset)
    {
        if (classifierDataset is "" or "?" || scoreDataset is "" or "?") return;
        if (!string.Equals(classifierDataset, scoreDataset, StringComparison.OrdinalIgnoreCase))
            throw new AdpException($"{scorePath}: score model trained on {scoreDataset}, but the classifier {classifierPath} is for {classifierDataset}");
    }
}
