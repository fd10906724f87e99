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

    /// <summary>A score model purifies images of the data set it was trained on: a Fashion-MNIST model run on MNIST digits
    /// (same shape) would silently measure a mismatched defense. <paramref name="user"/> names what needs
    /// <paramref name="dataset"/> (e.g. "the classifier c.ckpt").</summary>
    /// <exception cref="AdpException">both data sets are recorded and differ.</exception>
    public static void RequireSameDataset(string scorePath, string scoreDataset, string user, string dataset)
    {
        if (dataset is "" or "?" || scoreDataset is "" or "?") return;
        if (!string.Equals(dataset, scoreDataset, StringComparison.OrdinalIgnoreCase))
            throw new AdpException($"{scorePath}: score model trained on {scoreDataset}, but {user} is for {dataset}");
    }
}
