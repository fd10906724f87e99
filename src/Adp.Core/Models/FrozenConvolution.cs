using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Adp.Models;

/// <summary>
/// Convolutions whose input gradient, where their weights are frozen (attacks differentiate with respect to the image only),
/// runs as a oneDNN forward convolution: for stride 1 and zero padding p, ∂L/∂x = conv2d(∂L/∂y, W̃, padding d·(k − 1) − p,
/// dilation d), with W̃ the weight with input and output channels swapped and the kernel flipped in both spatial axes (the
/// transposed convolution, as in the backward-data formula of any convolution text).
/// Why: every gradient runs with oneDNN off (<see cref="NativeRuntime"/>: libtorch 2.10's oneDNN backward-data kernels return
/// wrong input gradients on this project's AVX-512 machines), and libtorch's own input-gradient path (im2col and a matrix
/// product) took about twice a oneDNN forward convolution; oneDNN's forward kernels are sound (checked against float64), so the
/// gradient runs through them inside <see cref="NativeRuntime.ForwardInBackward"/>, with W̃ stored channels-last as the network's
/// weights are. Measured (docs/BENCHMARKS.md): the CIFAR-10 score network's backward pass in 45% less time.
/// The forward value is the module's own, bit for bit; the input gradient equals libtorch's to float rounding (another
/// summation order; tested in float64 to 1e-12 of the largest entry per convolution and 1e-10 through an NCSNv2, in float32
/// against float64 to 1e-4 in the toolkit's oneDNN mode). The backward pass uses the weight as it is then: unlike libtorch's
/// own path there is no version check (a check raised inside a TorchSharp backward callback ends the process), so code must
/// not change frozen weights between the passes (no attack does). A double backward (create_graph) stays differentiable.
/// Where the weights or the bias require a gradient (training), the input does not, gradients are off, or the convolution is
/// strided, grouped, transposed or not zero-padded with d·(k − 1) ≥ p, this is the module's plain forward pass.
/// </summary>
public static class FrozenConvolution
{
    /// <summary>y = conv(x) (N×C_in×H×W → N×C_out×H′×W′), with the input gradient of the class summary where it
    /// applies.</summary>
    public static Tensor ForwardFrozen(this Conv2d conv, Tensor x) =>
        Applies(conv, x)
            ? TransposedGradientConv.apply(x, new ConvState(conv.weight!, conv.bias, conv.padding!, conv.dilation))
            : conv.forward(x);

    /// <summary>As <see cref="ForwardFrozen(Conv2d, Tensor)"/> where <paramref name="module"/> is a <see cref="Conv2d"/>, or a
    /// <see cref="Sequential"/> of a <see cref="ZeroPad2d"/> and a <see cref="Conv2d"/> (ConvMeanPool's adjusted padding; the
    /// padding's backward is libtorch's; no shipped configuration reaches it); the module's forward pass otherwise.</summary>
    public static Tensor ForwardFrozen(this nn.Module<Tensor, Tensor> module, Tensor x)
    {
        if (module is Conv2d conv) return conv.ForwardFrozen(x);
        if (module is Sequential seq && seq.children().ToArray() is [ZeroPad2d pad, Conv2d last])
        {
            using var padded = pad.forward(x);
            return last.ForwardFrozen(padded);
        }
        return module.forward(x);
    }

    /// <summary>Whether the input gradient of <paramref name="conv"/> at <paramref name="x"/> runs as a forward convolution.</summary>
    public static bool Applies(Conv2d conv, Tensor x) =>
        is_grad_enabled() && x.requires_grad && conv.weight is { requires_grad: false } && conv.bias is not { requires_grad: true }
        && !conv.transposed && conv.groups == 1 && conv.padding_type is null && conv.padding_mode == PaddingModes.Zeros
        && conv.stride.All(s => s == 1) && conv.padding is { Length: 2 } padding && conv.dilation.Length == 2
        && Enumerable.Range(0, 2).All(i => conv.dilation[i] * (conv.kernel_size[i] - 1) - padding[i] >= 0);

    private sealed record ConvState(Tensor Weight, Tensor? Bias, long[] Padding, long[] Dilation);

    private sealed class TransposedGradientConv : autograd.SingleTensorFunction<TransposedGradientConv>
    {
        public override string Name => "AdpTransposedGradientConv";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var state = (ConvState)vars[1];
            ctx.save_data("state", state);   // the weight is the module's parameter, alive while the module is
            return F.conv2d(x, state.Weight, state.Bias, padding: state.Padding, dilation: state.Dilation);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var s = (ConvState)ctx.get_data("state");
            var weight = s.Weight;
            // No no_grad(): autograd runs a backward pass with gradients off unless create_graph asked for them.
            using var scope = NewDisposeScope();
            long kh = weight.shape[2], kw = weight.shape[3];
            long[] padding = [s.Dilation[0] * (kh - 1) - s.Padding[0], s.Dilation[1] * (kw - 1) - s.Padding[1]];
            // W̃ (C_in×C_out×k×k), made per call from the weight, channels-last like the network's.
            var flipped = weight.transpose(0, 1).flip(2, 3).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            Tensor grad;
            using (NativeRuntime.ForwardInBackward()) grad = F.conv2d(gradOutput, flipped, padding: padding, dilation: s.Dilation);
            return [grad.MoveToOuterDisposeScope(), null!];   // one entry per input; the state gets none
        }
    }
}
