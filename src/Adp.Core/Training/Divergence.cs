using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Training;

/// <summary>
/// Stops a training whose loss or gradient is no longer finite, before the optimizer step that would write NaN into the
/// weights, and so into every later checkpoint, EMA and snapshot. Without it a diverged run goes on for hours, its loss
/// hidden from the progress line, and every snapshot it keeps is useless (seen on a Fashion-MNIST ngf-16 run that went NaN
/// at iteration ~525 of 12,000; the cause was oneDNN's convolution gradients, see NativeRuntime, not the learning rate).
/// </summary>
public static class Divergence
{
    /// <summary>Clips the gradient to global ℓ2 norm <paramref name="clip"/> (0 = no clipping; the norm is computed either
    /// way, without changing the gradient) and checks the loss and the norm.</summary>
    /// <param name="loss">scalar loss tensor, after <c>backward()</c>.</param>
    /// <param name="parameters">the parameters whose <c>.grad</c> the step will use.</param>
    /// <param name="iteration">0-based index of the iteration being computed (the message counts from 1).</param>
    /// <param name="checkpointPath">the run's checkpoint, named in the message.</param>
    /// <param name="resumeRemedy">what to change when resuming from the checkpoint, e.g. "--grad-clip 1"; null when the
    /// command cannot change anything on resume (then only a new run is suggested).</param>
    /// <param name="restartRemedy">what to change in a new run, e.g. "a smaller --lr".</param>
    /// <returns>The loss value.</returns>
    /// <exception cref="AdpException">the loss or the gradient norm is NaN or infinite; the step is not taken and the
    /// checkpoint file keeps its last (finite) state, if one was written.</exception>
    public static double ClipAndCheck(Tensor loss, IEnumerable<TorchSharp.Modules.Parameter> parameters, double clip, long iteration,
        string checkpointPath, string? resumeRemedy, string restartRemedy)
    {
        double value = loss.item<float>();
        // clip_grad_norm_ converts scalars implicitly inside TorchSharp: run it where no collection can free them
        // (NativeRuntime.WithoutCollection).
        double norm = clip > 0
            ? NativeRuntime.WithoutCollection(() => nn.utils.clip_grad_norm_(parameters, clip))
            : GradientNorm(parameters);
        if (double.IsFinite(value) && double.IsFinite(norm)) return value;
        string what = $"training diverged at iteration {iteration + 1}: loss {value}, gradient norm {norm}; the step was not taken";
        throw new AdpException(!File.Exists(checkpointPath)
            ? $"{what} and no checkpoint was written yet ({checkpointPath}): start again with {restartRemedy}"
            : resumeRemedy is null
                ? $"{what}; {checkpointPath} keeps its last checkpoint: start again with {restartRemedy}"
                : $"{what}; {checkpointPath} keeps its last checkpoint: resume it with --resume {resumeRemedy}, or start again with {restartRemedy}");
    }

    /// <summary>Global ℓ2 norm of the gradients (as clip_grad_norm_ computes it, without touching them).</summary>
    private static double GradientNorm(IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        var norms = parameters.Select(p => p.grad).OfType<Tensor>().Select(g => g.detach().norm()).ToArray();
        return norms.Length == 0 ? 0 : stack(norms).norm().item<float>();
    }
}
