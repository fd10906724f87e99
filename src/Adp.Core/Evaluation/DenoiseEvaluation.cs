using Adp.Data;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Evaluation;

public sealed record DenoiseResult(double Sigma, int Images, long Seed, double PsnrNoisy, double PsnrDenoised)
{
    public double Gain => PsnrDenoised - PsnrNoisy;
}

/// <summary>How well a score model denoises in one shot: x̃ = x + σz, x̂ = x̃ + σ·h(x̃) (Tweedie), PSNR
/// (peak 1) of x̃ and x̂ against x, averaged over images. Neither image is clipped.</summary>
public static class DenoiseEvaluation
{
    public static DenoiseResult Run(nn.Module<Tensor, Tensor> h, ImageDataset data, double sigma, int batchSize, long seed, Device device)
    {
        if (sigma <= 0) throw new AdpException($"--sigma: expected a positive number, got {sigma}");
        using var g = new Generator((ulong)seed, CPU);
        double sumNoisy = 0, sumDen = 0;
        using var _ = no_grad();
        for (int start = 0; start < data.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batchSize, data.Count - start);
            var x = data.Images(start, n, device);
            // Held scalars (see RootedScalars), bit for bit x + σ·z and noisy + σ·h(noisy).
            var noisy = x.Plus(randn(x.shape, generator: g).to(device).Times(sigma));
            var den = noisy.Plus(h.forward(noisy).Times(sigma));
            sumNoisy += Psnr(noisy, x).sum().item<double>();
            sumDen += Psnr(den, x).sum().item<double>();
        }
        return new DenoiseResult(sigma, data.Count, seed, sumNoisy / data.Count, sumDen / data.Count);
    }

    /// <summary>Per-image PSNR in dB for images in [0,1].</summary>
    public static Tensor Psnr(Tensor estimate, Tensor reference)
    {
        var mse = (estimate - reference).pow(RootedScalars.IntTwo).flatten(1).mean([1]).to(ScalarType.Float64);
        return mse.log10().Times(-10);
    }
}
