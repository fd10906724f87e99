using static TorchSharp.torch;

namespace Adp.Attacks;

internal static class Restarts
{
    /// <summary>
    /// What every attack does before any work: validates the threat model, the images (N×C×H×W) and the labels
    /// (N, any integer dtype, converted to int64), binds the model to the threat model
    /// (<see cref="IAttackModel.ForThreat"/>) and lets it check the loss against the classifier (DLR needs ≥ 3 classes).
    /// </summary>
    /// <exception cref="AdpException">Any of these checks fails.</exception>
    public static (IAttackModel Model, Tensor Labels) Prepare(ThreatModel threat, IAttackModel model, Tensor images, Tensor labels)
    {
        threat.Validate();
        if (images.dim() != 4) throw new AdpException($"attack: expected N×C×H×W images, got shape [{string.Join(", ", images.shape)}]");
        var y = Losses.Labels(labels, images.shape[0]);
        var bound = model.ForThreat(threat);
        if (bound.Kind == DirectionKind.Step && threat.Norm != Norm.Linf)
            throw new AdpException($"{bound.Describe()}: gives per-pixel ℓ∞ steps; use norm linf");
        bound.CheckInputs(images, y, threat.Loss);
        return (bound, y);
    }

    /// <summary><see cref="Prepare"/>s, then keeps the strongest of the threat model's restarts, all drawing from
    /// <paramref name="random"/> or, without one, from a generator seeded with the threat model's seed. A run may
    /// return a null loss when there is a single restart (nothing to compare).</summary>
    public static Tensor Run(ThreatModel threat, IAttackModel model, Tensor images, Tensor labels, RandomSource? random,
        Func<IAttackModel, Tensor, RandomSource, (Tensor Adv, Tensor? Loss)> runOnce)
    {
        var (bound, y) = Prepare(threat, model, images, labels);
        using var g = new Generator((ulong)threat.Seed, CPU);
        var source = random ?? g;
        return KeepStrongest(threat.Restarts, () => runOnce(bound, y, source));
    }

    /// <summary>Runs an attack <paramref name="count"/> times and keeps, per image, the result of highest loss.</summary>
    public static Tensor KeepStrongest(int count, Func<(Tensor Adv, Tensor? Loss)> runOnce)
    {
        using var scope = NewDisposeScope();
        Tensor? best = null, bestLoss = null;
        for (int r = 0; r < count; r++)
        {
            var (adv, loss) = runOnce();
            if (count > 1 && loss is null) throw new InvalidOperationException("an attack run returned no loss to compare restarts by");
            if (best is null) { best = adv; bestLoss = loss; continue; }
            var better = loss!.gt(bestLoss!);
            best = where(better.view(-1, 1, 1, 1), adv, best);
            bestLoss = where(better, loss, bestLoss!);
        }
        return best!.MoveToOuterDisposeScope();
    }
}
