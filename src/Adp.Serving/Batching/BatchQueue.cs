using System.Threading.Channels;

namespace Adp.Serving.Batching;

/// <summary>The bounded queue between the request threads and the batch worker (a <see cref="Channel{T}"/>).
/// Writers never wait: a full queue refuses at once, so the service answers 503 instead of piling up requests.</summary>
public sealed class BatchQueue(int capacity)
{
    private readonly Channel<WorkItem> _channel = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(capacity)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });
    private volatile bool _closed;

    public int Capacity { get; } = capacity;
    public int Count => _channel.Reader.Count;
    public bool Closed => _closed;
    internal ChannelReader<WorkItem> Reader => _channel.Reader;

    public enum Admission { Queued, Full, Closed }

    public Admission TryEnqueue(WorkItem item)
    {
        if (_closed) return Admission.Closed;
        if (_channel.Writer.TryWrite(item)) return Admission.Queued;
        return _closed ? Admission.Closed : Admission.Full;
    }

    /// <summary>Accepts nothing more; the worker finishes what is queued, then stops.</summary>
    public void Close()
    {
        _closed = true;
        _channel.Writer.TryComplete();
    }
}
