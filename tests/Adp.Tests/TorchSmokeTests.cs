using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

public class TorchSmokeTests
{
    /// <summary>Central differences with h = 1e-6 in float64: truncation O(h²·f''') ~ 1e-12, rounding ~ 1e-16·|L|/h ~ 1e-9 for
    /// |L| ~ 10; 1e-7 leaves a margin. (Rounding both sides to 6 decimals, as before, failed at a rounding boundary.)</summary>
    private const double Tolerance = 1e-7;

    /// <summary>TorchSharp loads, and autograd through a convolution agrees with central finite differences.</summary>
    [Fact]
    public void Conv2d_GradientMatchesFiniteDifference()
    {
        using var g = new Generator(42, CPU);
        var conv = nn.Conv2d(2, 3, 3, padding: 1);
        conv.to(ScalarType.Float64);
        using (no_grad())  // its own weights, not the global generator's (other tests draw from that one in parallel)
        {
            conv.weight!.copy_(randn(conv.weight.shape, dtype: ScalarType.Float64, generator: g).Times(0.3));
            conv.bias!.copy_(randn(conv.bias.shape, dtype: ScalarType.Float64, generator: g).Times(0.3));
        }
        var x = randn([2, 2, 5, 5], dtype: ScalarType.Float64, generator: g).requires_grad_(true);
        var w = randn([2, 3, 5, 5], dtype: ScalarType.Float64, generator: g);
        Tensor Loss(Tensor input) => (conv.forward(input).tanh() * w).sum();

        var grad = autograd.grad([Loss(x)], [x])[0];
        var xs = x.detach().clone();
        const double eps = 1e-6;
        foreach (var flat in new long[] { 0, 7, 24, 33, 61, 99 })
        {
            var plus = xs.clone(); plus.view(-1)[flat].AddInPlace(eps);
            var minus = xs.clone(); minus.view(-1)[flat].AddInPlace(-eps);
            double fd = (Loss(plus).item<double>() - Loss(minus).item<double>()) / (2 * eps);
            Assert.InRange(grad.view(-1)[flat].item<double>() - fd, -Tolerance, Tolerance);
        }
        // And the weight gradient, through backward().
        conv.zero_grad();
        Loss(xs).backward();
        var wg = conv.weight!.grad!.view(-1)[5].item<double>();
        using (no_grad())
        {
            conv.weight!.view(-1)[5].AddInPlace(eps);
            double up = Loss(xs).item<double>();
            conv.weight!.view(-1)[5].AddInPlace(-2 * eps);
            double down = Loss(xs).item<double>();
            conv.weight!.view(-1)[5].AddInPlace(eps);
            Assert.InRange(wg - (up - down) / (2 * eps), -Tolerance, Tolerance);
        }
    }
}
