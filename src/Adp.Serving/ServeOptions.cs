namespace Adp.Serving;

/// <summary>How the service runs: addresses, batching, queue and upload limits (the defense itself is in
/// <see cref="Inference.DefenseModels"/>).</summary>
public sealed record ServeOptions
{
    /// <summary>Addresses to listen on (Kestrel syntax); port 0 picks a free port.</summary>
    public IReadOnlyList<string> Urls { get; init; } = ["http://127.0.0.1:5000"];

    /// <summary>Images purified together at most: a batch closes when it holds this many, or after
    /// <see cref="MaxWait"/> from its first image.</summary>
    public int MaxBatch { get; init; } = 32;

    /// <summary>How long a batch waits for more images after its first one.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Requests waiting for the model at most; beyond it a request gets 503 with Retry-After.</summary>
    public int QueueCapacity { get; init; } = 128;

    /// <summary>The largest accepted request body (an image upload or a JSON pixel array), in bytes.</summary>
    public long MaxUploadBytes { get; init; } = 1 << 20;

    /// <summary>How long Ctrl-C / SIGTERM waits for in-flight requests before stopping anyway.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Log each request and the start-up lines (off in tests).</summary>
    public bool Logging { get; init; } = true;

    public void Validate()
    {
        if (Urls.Count == 0) throw new AdpException("--urls: expected at least one address");
        if (MaxBatch < 1) throw new AdpException($"--max-batch: expected at least 1, got {MaxBatch}");
        if (MaxWait < TimeSpan.Zero) throw new AdpException($"--max-wait-ms: expected ≥ 0, got {MaxWait.TotalMilliseconds}");
        if (QueueCapacity < 1) throw new AdpException($"--queue: expected at least 1, got {QueueCapacity}");
        if (MaxUploadBytes < 1024) throw new AdpException($"--max-upload: expected at least 1024 bytes, got {MaxUploadBytes}");
    }
}
