using Adp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>
/// <see cref="FrozenConvolution"/>: with frozen weights, a convolution's input gradient is computed as a forward convolution with
/// the flipped, transposed kernel. Checked in float64 against libtorch's own backward (the same convolution with weights that
/// require gradients, differentiated with respect to the input only): the sums differ only in order, so they agree to a few
/// ulps of the largest entry (bound 1e-12 relative; a wrong padding, flip or transposition gives errors of order 1).
/// </summary>
public class FrozenConvolutionTests
{
    private static double RelativeError(Tensor a, Tensor b) => (a - b).abs().max().item<double>() / b.abs().max().item<double>();

    /// <summary>Output (bits) and input gradient of <paramref name="conv"/> at <paramref name="x"/>, frozen and trainable.</summary>
    private static (Tensor Frozen, Tensor Trainable, Tensor GradFrozen, Tensor GradTrainable) BothWays(
        nn.Module<Tensor, Tensor> conv, Tensor x, Generator g)
    {
        var outputs = new List<Tensor>();
        var grads = new List<Tensor>();
        Tensor? v = null;
        foreach (bool frozen in new[] { true, false })
        {
            foreach (var p in conv.parameters()) p.requires_grad_(!frozen);
            var xr = x.detach().requires_grad_(true);
            var y = conv.ForwardFrozen(xr);
            v ??= randn(y.shape, dtype: y.dtype, generator: g);
            outputs.Add(y.detach());
            grads.Add(autograd.grad([y.mul(v).sum()], [xr])[0]);
        }
        return (outputs[0], outputs[1], grads[0], grads[1]);
    }

    [Theory]
    [InlineData(1, 8, 3, 1, 28)]    // the score network's first convolution (MNIST)
    [InlineData(8, 3, 3, 1, 32)]    // its last (CIFAR-10): 3 output channels
    [InlineData(16, 16, 3, 2, 14)]  // dilated residual blocks
    [InlineData(16, 16, 3, 4, 7)]
    [InlineData(8, 16, 1, 1, 14)]   // 1×1 shortcuts
    [InlineData(8, 8, 5, 1, 7)]
    public void InputGradient_EqualsLibtorchs_AndTheOutputIsTheModules(int ci, int co, int k, int d, int size)
    {
        using var g = new Generator(21);
        manual_seed(4);
        using var conv = nn.Conv2d(ci, co, k, padding: d * (k / 2), dilation: d);
        conv.to(ScalarType.Float64);
        var x = randn(new long[] { 3, ci, size, size }, dtype: ScalarType.Float64, generator: g);
        foreach (var p in conv.parameters()) p.requires_grad_(false);
        Assert.True(FrozenConvolution.Applies(conv, x.detach().requires_grad_(true)));
        var (frozen, trainable, gradFrozen, gradTrainable) = BothWays(conv, x, g);
        Assert.True(frozen.eq(trainable).all().item<bool>(), "the forward value must be the module's, bit for bit");
        Assert.True(RelativeError(gradFrozen, gradTrainable) < 1e-12, $"relative error {RelativeError(gradFrozen, gradTrainable):G3}");
    }

    [Fact]
    public void PaddedSequence_AndTheWholeScoreNetwork_GiveLibtorchsGradient()
    {
        using var g = new Generator(22);
        manual_seed(5);
        using var padded = nn.Sequential(nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(8, 16, 3, padding: 1));
        padded.to(ScalarType.Float64);
        var x = randn(new long[] { 2, 8, 7, 7 }, dtype: ScalarType.Float64, generator: g);
        var (a, b, ga, gb) = BothWays(padded, x, g);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.True(RelativeError(ga, gb) < 1e-12);

        using var net = new Ncsnv2(new ScoreModelConfig(1, 28, 8, 1.0, 0.01, 5));
        net.to(ScalarType.Float64).eval();
        var images = rand(new long[] { 2, 1, 28, 28 }, dtype: ScalarType.Float64, generator: g);
        var (na, nb, nga, ngb) = BothWays(net, images, g);
        Assert.True(na.eq(nb).all().item<bool>());
        // Across ~30 layers the reordered sums stay within float64 rounding of the largest entry.
        Assert.True(RelativeError(nga, ngb) < 1e-10, $"relative error {RelativeError(nga, ngb):G3}");
        Assert.True(ngb.abs().max().item<double>() > 0);
    }

    [Fact]
    public void StridedTrainableOrGradientFreeCalls_AreThePlainForwardPass()
    {
        using var strided = nn.Conv2d(4, 4, 3, stride: 2, padding: 1);
        using var plain = nn.Conv2d(4, 4, 3, padding: 1);
        foreach (var p in strided.parameters().Concat(plain.parameters())) p.requires_grad_(false);
        var x = randn(1, 4, 8, 8).requires_grad_(true);
        Assert.False(FrozenConvolution.Applies(strided, x));
        Assert.True(FrozenConvolution.Applies(plain, x));
        Assert.False(FrozenConvolution.Applies(plain, x.detach()));   // no gradient wanted
        using (no_grad()) Assert.False(FrozenConvolution.Applies(plain, x));
        foreach (var p in plain.parameters()) p.requires_grad_(true);
        Assert.False(FrozenConvolution.Applies(plain, x));   // training: libtorch's backward, weight gradients included
    }
}
