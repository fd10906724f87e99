using static TorchSharp.torch;

namespace Adp.Attacks;

internal static class Restarts
{
    /// <summary>Validates the threat model, seeds one generator from it, and keeps the strongest of its restarts.</summary>
    public static Tensor Run(ThreatModel threat, Func<Generator, (Tensor Adv, Tensor Loss)> runOnce)
    {
        threat.Validate();
        using var g = new Generator((ulong)threat.Seed, CPU);
        return KeepStrongest(threat.Restarts, () => runOnce(g));
    }

    /// <summary>Runs an attack <paramref name="count"/> times and keeps, per image, the result of highest loss.</summary>
    public static Tensor KeepStrongest(int count, Func<(Tensor Adv, Tensor Loss)> runOnce)
    {
        using var scope = NewDisposeScope();
        Tensor? best = null, bestLoss = null;
        for (int r = 0; r < count; r++)
        {
            var (adv, loss) = runOnce();
            if (best is null) { best = adv; bestLoss = loss; continue; }
            var better = loss.gt(bestLoss!);
            best = where(better.view(-1, 1, 1, 1), adv, best);
            bestLoss = where(better, loss, bestLoss!);
        }
        return best!.MoveToOuterDisposeScope();
    }
}
