using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using TorchSharp;
using Xunit.Sdk;

[assembly: Adp.Tests.TensorScopePerTest]

namespace Adp.Tests;

/// <summary>
/// Every synchronous test body runs inside a TorchSharp dispose scope, opened before it and disposed after it on the same thread.
/// Why: TorchSharp 0.107 hands libtorch a tensor's native handle without keeping the managed object alive, as it does for
/// scalars (RootedScalars), so a temporary outside any scope (the <c>x.neg()</c> of <c>x.add(x.neg().exp())</c>) can be finalized
/// by a collection that another thread starts during the native call: beside a collecting thread such a loop crashed the test
/// host or gave a wrong sum within 20,000 iterations in 5 of 5 runs (2026-12-02). A dispose scope holds every tensor made on
/// its thread until it ends, so none is finalized mid-call; the toolkit's own computing paths open their scopes (network layers, purifiers,
/// attacks, evaluation, serving), and this gives the tests' arithmetic the same guarantee. Tensors made outside the body (class
/// constructors, fixtures, theory data) are not in the scope, so nothing a later test uses is disposed. Async tests are left
/// out: their continuations may run on other threads than the one that opened the scope. The GC-stress bodies and the fuzz
/// inputs run on threads of their own, outside it, so the toolkit's code there keeps only its own scopes, as in production.
/// Everything a body makes is held until it ends: a long loop of temporaries in a test should open a scope per iteration.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
internal sealed class TensorScopePerTestAttribute : BeforeAfterTestAttribute
{
    private static readonly ConcurrentDictionary<MethodInfo, (DisposeScope Scope, int Thread)> Open = new();

    private static bool IsAsync(MethodInfo m) => m.GetCustomAttribute<AsyncStateMachineAttribute>() is not null
                                                 || typeof(Task).IsAssignableFrom(m.ReturnType);

    public override void Before(MethodInfo methodUnderTest)
    {
        if (IsAsync(methodUnderTest)) return;
        var scope = torch.NewDisposeScope();
        if (Open.TryAdd(methodUnderTest, (scope, Environment.CurrentManagedThreadId))) return;
        scope.Dispose();   // not left on this thread's scope stack
        throw new InvalidOperationException($"{methodUnderTest.Name}: a tensor scope is already open for this test method");
    }

    public override void After(MethodInfo methodUnderTest)
    {
        if (IsAsync(methodUnderTest) || !Open.TryRemove(methodUnderTest, out var open)) return;
        // Disposing from another thread would pop that thread's scope stack: fail loudly instead. xunit 2 runs Before, a
        // synchronous body and After inline on one thread (TestInvoker.RunAsync), so this is not expected.
        if (open.Thread != Environment.CurrentManagedThreadId)
            throw new InvalidOperationException(
                $"{methodUnderTest.Name}: the test ended on another thread than it began; its tensor scope stays open");
        open.Scope.Dispose();
    }
}
