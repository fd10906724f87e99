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
}
