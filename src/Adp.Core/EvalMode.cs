using TorchSharp;
using static TorchSharp.torch;

namespace Adp;

/// <summary>
/// Puts modules in evaluation mode for a while and then restores every module's own training flag exactly as it
/// was, even when the work in between throws. Attacks and purifiers run the classifier and the score network
/// through this: a BatchNorm model left in training mode would otherwise normalize with batch statistics and
/// overwrite its running statistics on every forward pass, even under <c>no_grad</c> (case 8). Nested scopes compose.
/// <code>using var eval = EvalMode.Enter(classifier, score);</code>
/// </summary>
public sealed class EvalMode : IDisposable
{
    // Every module of the trees in pre-order (a parent before its children), with its own flag.
    private readonly List<(nn.Module Module, bool Training)> _flags = [];
    private bool _disposed;

    private EvalMode(IEnumerable<nn.Module?> modules)
    {
        foreach (var m in modules)
            if (m is not null) Record(m);
        if (_flags.Any(f => f.Training))
            foreach (var m in modules) m?.eval();
    }

    /// <summary>Records the training flag of every module in the trees of <paramref name="modules"/> (nulls are
    /// skipped), switches them to evaluation mode, and restores the flags when disposed.</summary>
    public static EvalMode Enter(params nn.Module?[] modules) => new(modules);

    private void Record(nn.Module m)
    {
        _flags.Add((m, m.training));
        foreach (var (_, child) in m.named_children()) Record(child);
    }

    /// <summary>Restores each module's flag. <c>train(flag)</c> also sets a module's descendants, so the flags are
    /// set in pre-order: a module's own call comes after its ancestors' and before its descendants'.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (m, training) in _flags)
            if (m.training != training) m.train(training);
    }
}
