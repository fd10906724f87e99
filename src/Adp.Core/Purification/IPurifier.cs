using static TorchSharp.torch;

namespace Adp.Purification;

/// <summary>Anything that purifies a batch of images in [0,1] with randomness from a generator.</summary>
public interface IPurifier
{
    /// <summary>One line naming the purifier and its settings, for reports.</summary>
    string Describe();

    /// <summary>Purifies x (N×C×H×W in [0,1]) with noise drawn from <paramref name="random"/> (N rows).</summary>
    PurificationResult Purify(Tensor x, RandomSource random, bool keepTrajectory = false);
}
