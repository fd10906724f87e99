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
}
