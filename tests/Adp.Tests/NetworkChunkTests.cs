using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>The images per score-network call (<see cref="AdaptiveStepPurifier.NetworkChunk"/>,
/// <see cref="DifferentiablePurifier.Chunk"/>) are a speed setting only: the purified images and the gradient through the
/// purifier are bitwise the same for any chunk, so a default that changes (e.g. with the network's size) cannot change a
/// result, and an evaluation resumed under another default stays consistent.</summary>
public class NetworkChunkTests
{
    [Theory]
    [InlineData("cifar10-score.ckpt", 16)]
    [InlineData("mnist-score.ckpt", 32)]
    public void ChunkChangesNeitherPurificationNorItsGradient(string model, int expectedDefault)
    {
        var (net, info) = ScoreModelFile.Load(TestEnvironment.Model(model));
        foreach (var p in net.parameters()) p.requires_grad_(false);
        Assert.Equal(expectedDefault, AdaptiveStepPurifier.ChunkFor(net));
        var c = info.Config;
        const int n = 20;   // one call at chunk 64 (the baseline); several, with a short last one, at 7 and the defaults
        var g = new Generator(3, CPU);
        var x = rand(new long[] { n, c.Channels, c.ImageSize, c.ImageSize }, generator: g).Times(0.8).Plus(0.1);
        var eps = randn(x.shape, generator: g);
        var w = randn(x.shape, generator: g);
        var settings = new PurifierSettings(Steps: 3, Lambda: 1);
        (Tensor Images, Tensor Grad) Run(int chunk)
        {
            using var purified = new AdaptiveStepPurifier(net, settings) { NetworkChunk = chunk }.Purify(x, eps);
            var xr = x.clone().requires_grad_(true);
            var loss = (new DifferentiablePurifier(net, settings) { Chunk = chunk }.Purify(xr, eps) * w).sum();
            return (purified.Images.clone(), autograd.grad([loss], [xr])[0]);
        }
        var (images, grad) = Run(64);
        Assert.True(grad.abs().sum().item<float>() > 0);   // a gradient that could differ
        foreach (int chunk in new[] { 7, expectedDefault })
        {
            var (i2, g2) = Run(chunk);
            Assert.True(i2.eq(images).all().item<bool>(), $"{model}: purified images differ with chunk {chunk}");
            Assert.True(g2.eq(grad).all().item<bool>(), $"{model}: gradient differs with chunk {chunk}");
        }
    }
}
