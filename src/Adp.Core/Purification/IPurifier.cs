using TorchSharp;
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

/// <summary>A purifier with autograd from its output back to its input, for full-gradient adaptive attacks (METHOD.md §5):
/// ADP itself (<see cref="DifferentiablePurifier"/>) and the variants that have a differentiable form
/// (<see cref="PurifierVariant.CreateDifferentiable"/>). Given the same noise source, the forward value is what the
/// matching <see cref="IPurifier"/> returns.</summary>
public interface IDifferentiablePurifier
{
    /// <summary>One line naming the purifier and its settings, for reports.</summary>
    string Describe();

    /// <summary>The score network h; attack models hold it in evaluation mode, also for the backward pass (which may
    /// recompute it).</summary>
    nn.Module<Tensor, Tensor> Score { get; }

    /// <summary>Purified images (N×C×H×W in [0,1]) with a graph back to <paramref name="x"/> (N×C×H×W in [0,1]); noise drawn
    /// from <paramref name="random"/> (N rows) in the order the non-differentiable purifier draws it.</summary>
    Tensor Purify(Tensor x, RandomSource random);
}
