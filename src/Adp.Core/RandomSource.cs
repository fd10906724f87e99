using Adp.Training;
using static TorchSharp.torch;

namespace Adp;

/// <summary>
/// Where the random draws of purification and attacks come from: Gaussian and uniform tensors whose first
/// dimension is the batch (one row per image, or per copy of an image). Two kinds:
/// <see cref="GeneratorSource"/> draws the whole tensor from one torch generator (what a torch user expects; the
/// draws then depend on the batch's size and order), and <see cref="PerImageSource"/> draws each row from its own
/// stream keyed by (seed, data set index, purpose), so every image gets the same noise whatever batch, batch order
/// or shard it is evaluated in. A <see cref="Generator"/> converts implicitly to a <see cref="GeneratorSource"/>.
/// Draws are float32 on the CPU; callers move them to their device.
/// </summary>
public abstract class RandomSource
{
    /// <summary>Standard-normal draws of <paramref name="shape"/> (shape[0] = rows).</summary>
    public abstract Tensor Randn(long[] shape);

    /// <summary>Uniform [0,1) draws of <paramref name="shape"/> (shape[0] = rows).</summary>
    public abstract Tensor Rand(long[] shape);

    /// <summary>The source for <paramref name="copies"/> stacked copies of this batch, copy-major as
    /// <c>Tensor.repeat(copies, …)</c> lays them out: row j·N + i is copy j of row i.</summary>
    public abstract RandomSource Repeat(int copies);

    /// <summary>The source of rows [start, start + length), sharing their streams with this one.</summary>
    public abstract RandomSource Narrow(long start, long length);

    public static implicit operator RandomSource(Generator generator) => new GeneratorSource(generator);
}

/// <summary>All draws from one torch generator, in row-major order of the requested shape.</summary>
public sealed class GeneratorSource(Generator generator) : RandomSource
{
    public Generator Generator { get; } = generator;
    public override Tensor Randn(long[] shape) => randn(shape, generator: Generator);
    public override Tensor Rand(long[] shape) => rand(shape, generator: Generator);
    public override RandomSource Repeat(int copies) => this;
    public override RandomSource Narrow(long start, long length) => this;
}

/// <summary>
/// One random stream per row: row r's k-th draw comes from a torch generator seeded with Mix(key_r, k), so a row's
/// draws depend only on its key and on how many draws it has had, never on the other rows of the batch
/// (issue #13: results that do not depend on batch size, order or sharding).
/// </summary>
public sealed class PerImageSource : RandomSource
{
    private readonly ulong[] _keys;
    private readonly long[] _draws;
    private readonly int _offset;
    private readonly int _count;

    /// <summary>One stream per key; keys should be distinct (use <see cref="For"/>).</summary>
    public PerImageSource(IReadOnlyList<ulong> keys) : this(keys.ToArray(), new long[keys.Count], 0, keys.Count) { }

    private PerImageSource(ulong[] keys, long[] draws, int offset, int count)
    {
        _keys = keys;
        _draws = draws;
        _offset = offset;
        _count = count;
    }

    /// <summary>Rows for the images with data set indices <paramref name="imageIndices"/>, keyed by
    /// (seed, index, purpose…): e.g. purpose = (attack id, 1) for the attack's random start and EOT noise.</summary>
    public static PerImageSource For(long seed, IEnumerable<long> imageIndices, params long[] purpose) =>
        new(imageIndices.Select(i => Seeds.Mix([seed, i, .. purpose])).ToArray());

    public int Rows => _count;

    public override Tensor Randn(long[] shape) => Draw(shape, normal: true);
    public override Tensor Rand(long[] shape) => Draw(shape, normal: false);

    private Tensor Draw(long[] shape, bool normal)
    {
        if (shape.Length == 0 || shape[0] != _count)
            throw new ArgumentException($"per-image random source has {_count} rows; a draw of shape [{string.Join(", ", shape)}] was requested");
        long[] row = shape[1..];
        using var scope = NewDisposeScope();
        var rows = new Tensor[_count];
        for (int r = 0; r < _count; r++)
        {
            using var g = new Generator(NextSeed(r), CPU);
            rows[r] = normal ? randn(row, generator: g) : rand(row, generator: g);
        }
        return (_count == 0 ? empty(shape) : stack(rows)).MoveToOuterDisposeScope();
    }

    private ulong NextSeed(int row)
    {
        int i = _offset + row;
        return Seeds.Mix((long)_keys[i], _draws[i]++) & 0x7fffffffffffffff;
    }

    /// <summary>Consumes one draw of every row and derives the copies' streams from it, so repeated calls (one per
    /// attack iteration, say) give fresh copies.</summary>
    public override RandomSource Repeat(int copies)
    {
        var keys = new ulong[copies * _count];
        for (int r = 0; r < _count; r++)
        {
            ulong parent = NextSeed(r);
            for (int j = 0; j < copies; j++) keys[j * _count + r] = Seeds.Mix((long)parent, j);
        }
        return new PerImageSource(keys);
    }

    public override RandomSource Narrow(long start, long length)
    {
        if (start < 0 || length < 0 || start + length > _count)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + length}) outside 0…{_count}");
        return new PerImageSource(_keys, _draws, _offset + (int)start, (int)length);
    }
}
