using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Training;

/// <summary>
/// Denoising score matching with σ²-weighting (METHOD.md §1): x̃ = x + σz, loss = mean over the batch of
/// ½‖σ·s(x̃) + z‖² = ½‖h(x̃) + z‖², h being the σ-free network output.
/// </summary>
public static class DsmLoss
{
    /// <param name="levels">Index of each image's noise level into <paramref name="sigmas"/>.</param>
    /// <param name="z">Standard normal noise, the shape of <paramref name="x"/>.</param>
    public static Tensor Compute(nn.Module<Tensor, Tensor> h, Tensor x, Tensor sigmas, Tensor levels, Tensor z)
    {
        using var scope = NewDisposeScope();
        var s = sigmas.index_select(0, levels).view(-1, 1, 1, 1);
        // Written with held scalars (see RootedScalars); bit for bit 0.5 * (h(x + s * z) + z).square().sum([1, 2, 3]).mean().
        var output = h.forward(x.Plus(s * z));
        return output.Plus(z).pow(RootedScalars.IntTwo).sum([1, 2, 3]).mean().Times(0.5).MoveToOuterDisposeScope();
    }

    /// <summary>Draws one level per image and the noise from <paramref name="g"/> (a CPU generator, so runs are
    /// reproducible across devices), then computes the loss.</summary>
    public static Tensor Sample(nn.Module<Tensor, Tensor> h, Tensor x, Tensor sigmas, Generator g)
    {
        using var levels = randint(sigmas.shape[0], [x.shape[0]], dtype: ScalarType.Int64, generator: g).to(x.device);
        using var z = randn(x.shape, generator: g).to(x.device);
        return Compute(h, x, sigmas, levels, z);
    }
}
