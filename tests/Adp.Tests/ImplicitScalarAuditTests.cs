using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using System.Reflection;
using System.Reflection.Emit;

namespace Adp.Tests;

/// <summary>
/// The whole kind of the "toFloat" failures (RootedScalars): TorchSharp 0.107 hands libtorch a <c>Scalar</c>'s native handle
/// without keeping the managed object alive, so a temporary scalar can be finalized by a collection that another thread
/// triggers during the native call. GC-stress tests catch such a temporary only where they happen to run it; this audit
/// compiles the toolkit's sources with Roslyn and fails on (1) every implicit conversion to <c>Scalar</c> and every
/// <c>ToScalar()</c> or cast not held by a <c>using</c> local or a static readonly field (<c>x.clamp(0, 1)</c>), and (2) every call
/// of a TorchSharp member that makes such a temporary itself, found by scanning TorchSharp.dll's IL (<c>x * 2</c> is
/// operator *(Tensor, int), <c>a + b</c> is add(b) with α = 1, <c>torch.normal</c>, <c>F.elu</c>), unless the call's innermost
/// function is a lambda passed to <c>NativeRuntime.WithoutCollection</c> or the call is listed in <see cref="Allowed"/> with its
/// reason. Found on 2026-12-02, when CI failed in InstanceNorm++'s constructor: that
/// <c>torch.normal</c> and one <c>eq(label)</c> in <c>adp purify</c>; the probe test below checks the audit on known cases.
/// The tests' own sources are audited too (they run in parallel; ~175 such temporaries held on 2026-12-02).
/// </summary>
public class ImplicitScalarAuditTests
{
    private static readonly string[] Projects = ["Adp.Core", "Adp.Cli", "Adp.Serving"];

    /// <summary>The shared frameworks' assemblies plus those of the test process that <paramref name="also"/> selects.</summary>
    private static IEnumerable<MetadataReference> References(Func<string, bool> also) =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.Contains($"{Path.DirectorySeparatorChar}shared{Path.DirectorySeparatorChar}") || also(p))
            .Select(p => MetadataReference.CreateFromFile(p));

    private static CSharpCompilation Compile(string project)
    {
        string dir = Path.Combine(TestEnvironment.RepoRoot, project == "Adp.Tests" ? "tests" : "src", project);
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Order(StringComparer.Ordinal)
            .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, f))
            .Append(CSharpSyntaxTree.ParseText(
                "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; "
                + "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;"
                + (project == "Adp.Tests" ? " global using Xunit;" : ""),
                parse, "GlobalUsings.cs"));
        // The shared frameworks plus exactly what the built project references (not every assembly the tests load: the
        // Scalar.AspNetCore package's namespace "Scalar" would hide TorchSharp's Scalar type from Adp.Core's sources).
        var referenced = Assembly.Load(project == "Adp.Cli" ? "adp" : project).GetReferencedAssemblies()
            .Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
        return CSharpCompilation.Create(project, trees, References(p => referenced.Contains(Path.GetFileNameWithoutExtension(p))),
            new CSharpCompilationOptions(project == "Adp.Cli" ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
                allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
    }

    /// <summary>
    /// Metadata tokens of TorchSharp's methods that make a Scalar themselves, directly or through other TorchSharp methods (an IL
    /// scan of TorchSharp.dll for calls of Scalar's implicit conversions and of ToScalar): <c>x * 2</c> binds to
    /// operator *(Tensor, int), <c>a + b</c> to add(b) with α = 1, <c>torch.normal(1.0, 0.02, …)</c> to randn(…).mul_(std).add_(mean).
    /// Over-approximate: a scalar the library disposes itself is counted too. Not seen through: virtual calls (Sequential.forward
    /// calling its modules' forward): the classifiers' BatchNorm layers inside Sequential blocks are such a case, safe for the
    /// reason <see cref="Allowed"/> gives (training-mode steps only, inside a no-GC region).
    /// </summary>
    private static readonly Lazy<(HashSet<int> Makers, List<string> Unresolved)> LibraryScalarMakers = new(() =>
    {
        var assembly = typeof(TorchSharp.torch).Assembly;
        var module = assembly.ManifestModule;
        var opcodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => (ushort)o.Value);
        var scalar = assembly.GetType("TorchSharp.Scalar", throwOnError: true)!;
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic
            | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly;
        bool IsSeed(MethodBase m) => m.DeclaringType == scalar && m.Name == "op_Implicit"
            || m.Name == "ToScalar" && m.DeclaringType?.Namespace == "TorchSharp";
        var callers = new Dictionary<int, List<int>>();   // callee token → caller tokens, within TorchSharp
        var makers = new HashSet<int>();
        var unresolved = new List<string>();
        void Edge(int callee, int caller)
        {
            if (!callers.TryGetValue(callee, out var list)) callers[callee] = list = [];
            list.Add(caller);
        }
        Type[] types;
        try { types = assembly.GetTypes(); }
        catch (ReflectionTypeLoadException e) { types = e.Types.OfType<Type>().ToArray(); }
        foreach (var type in types)
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                byte[]? il;
                try { il = method.GetMethodBody()?.GetILAsByteArray(); } catch (Exception) { continue; }
                if (il is null) continue;
                // An iterator's or async method's body is its state machine's MoveNext.
                if (method.GetCustomAttribute<System.Runtime.CompilerServices.StateMachineAttribute>()?.StateMachineType
                        .GetMethod("MoveNext", all) is { } moveNext)
                    Edge(moveNext.MetadataToken, method.MetadataToken);
                Type[]? typeArguments = method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null;
                Type[]? methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
                for (int i = 0; i < il.Length;)
                {
                    ushort code = il[i] == 0xFE ? (ushort)(0xFE00 | il[i + 1]) : il[i];
                    if (!opcodes.TryGetValue(code, out var op))
                        throw new InvalidOperationException($"unknown IL opcode 0x{code:X} in {method.DeclaringType}.{method.Name}");
                    i += op.Size;
                    int operand = op.OperandType switch
                    {
                        OperandType.InlineNone => 0,
                        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI
                            or OperandType.ShortInlineVar => 1,
                        OperandType.InlineVar => 2,
                        OperandType.InlineI8 or OperandType.InlineR => 8,
                        OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                        _ => 4,
                    };
                    if (op.OperandType == OperandType.InlineMethod)
                    {
                        MethodBase? callee = null;
                        try { callee = module.ResolveMethod(BitConverter.ToInt32(il, i), typeArguments, methodArguments); }
                        catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException
                                                  or FileNotFoundException or FileLoadException)
                        {
                            unresolved.Add($"{method.DeclaringType}.{method.Name}: {e.GetType().Name}");
                        }
                        if (callee is not null && IsSeed(callee)) makers.Add(method.MetadataToken);
                        else if (callee is not null && callee.Module == module)
                            Edge(callee.IsGenericMethod
                                    ? ((MethodInfo)callee).GetGenericMethodDefinition().MetadataToken : callee.MetadataToken,
                                method.MetadataToken);
                    }
                    i += operand;
                }
            }
        var queue = new Queue<int>(makers);
        while (queue.TryDequeue(out int m))
            if (callers.TryGetValue(m, out var list))
                foreach (int c in list) if (makers.Add(c)) queue.Enqueue(c);
        return (makers, unresolved);
    });

    /// <summary>Calls of TorchSharp members (file|member) that make a scalar only where every such call already runs without
    /// collections, and why; tied to the file, so a new call elsewhere is audited.</summary>
    private static readonly Dictionary<string, string> Allowed = new()
    {
        ["src/Adp.Core/Models/Classifiers.cs|BatchNorm.forward"] =
            "makes its scalar only in training mode (num_batches_tracked.add_(1)); the classifier's training step runs inside "
            + "NativeRuntime.WithoutCollection (ClassifierTrainer), and its adversarial examples are made in eval mode",
    };

    /// <summary>Whether the node's innermost enclosing function is a lambda passed to NativeRuntime.WithoutCollection (a lambda
    /// made inside one may run after the region ended).</summary>
    private static bool InsideWithoutCollection(SyntaxNode node, SemanticModel model) =>
        node.Ancestors().FirstOrDefault(a => a is AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax)
            is LambdaExpressionSyntax { Parent: ArgumentSyntax { Parent.Parent: InvocationExpressionSyntax call } }
        && model.GetSymbolInfo(call).Symbol is IMethodSymbol { Name: "WithoutCollection", ContainingType.Name: "NativeRuntime" };

    /// <summary>Whether a scalar-valued expression initializes a <c>using</c> local (disposed in a finally, so alive through every
    /// call before it) or a static readonly field (a root, never finalized). A plain local can be collected right after its last
    /// use, which may be the native call itself: TorchSharp reads its handle without GC.KeepAlive.</summary>
    private static bool Held(SyntaxNode node) =>
        node.Parent is EqualsValueClauseSyntax { Parent: VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax declaration } }
        && declaration.Parent switch
        {
            LocalDeclarationStatementSyntax local => local.UsingKeyword.IsKind(SyntaxKind.UsingKeyword),
            UsingStatementSyntax => true,
            FieldDeclarationSyntax field => field.Modifiers.Any(SyntaxKind.StaticKeyword)
                                            && field.Modifiers.Any(SyntaxKind.ReadOnlyKeyword),
            _ => false,
        };

    /// <summary>Every implicit user-defined conversion to TorchSharp's Scalar whose result is not stored in a local or field, and
    /// every call of a TorchSharp member that makes one itself (<see cref="LibraryScalarMakers"/>) outside a no-GC region.</summary>
    private static List<string> UnheldScalars(CSharpCompilation compilation, string root)
    {
        var found = new List<string>();
        foreach (var tree in compilation.SyntaxTrees)
        {
            var model = compilation.GetSemanticModel(tree);
            string file = root == "" ? tree.FilePath : Path.GetRelativePath(root, tree.FilePath);
            string At(SyntaxNode node) => $"{file}:{tree.GetLineSpan(node.Span).StartLinePosition.Line + 1}: ";
            foreach (var node in tree.GetRoot().DescendantNodes().OfType<ExpressionSyntax>())
            {
                // The name of a member access (NaN in float.NaN) reports the access's conversion again.
                if (node.Parent is MemberAccessExpressionSyntax access && access.Name == node) continue;
                var conversion = model.GetConversion(node);
                bool implicitToScalar = conversion is { IsImplicit: true, IsUserDefined: true }
                                        && conversion.MethodSymbol?.ContainingType.ToDisplayString() == "TorchSharp.Scalar";
                // A cast's conversion belongs to the cast expression, which GetConversion reports as an identity.
                bool castToScalar = node is CastExpressionSyntax
                    && model.GetOperation(node) is Microsoft.CodeAnalysis.Operations.IConversionOperation { OperatorMethod: { } op }
                    && op.ContainingType.ToDisplayString() == "TorchSharp.Scalar";
                if ((implicitToScalar || castToScalar) && !Held(node)) found.Add(At(node) + node);
            }
            foreach (var node in tree.GetRoot().DescendantNodes().Where(n => n is InvocationExpressionSyntax or BinaryExpressionSyntax
                         or AssignmentExpressionSyntax or PrefixUnaryExpressionSyntax or BaseObjectCreationExpressionSyntax))
            {
                if (model.GetSymbolInfo(node).Symbol is not IMethodSymbol called) continue;
                var definition = called.ReducedFrom ?? called;
                definition = definition.OriginalDefinition;
                if (definition is { Name: "ToScalar", ContainingAssembly.Name: "TorchSharp" })
                {
                    // An explicit conversion makes the same temporary unless it is held.
                    if (!Held(node)) found.Add(At(node) + node);
                    continue;
                }
                if (definition.ContainingAssembly?.Name != "TorchSharp"
                    || !LibraryScalarMakers.Value.Makers.Contains(definition.MetadataToken)
                    || InsideWithoutCollection(node, model)
                    || Allowed.ContainsKey($"{file.Replace('\\', '/')}|{definition.ContainingType.Name}.{definition.Name}")) continue;
                found.Add(At(node)
                    + $"{called.ToDisplayString(SymbolDisplayFormat.CSharpShortErrorMessageFormat)} in {node.ToString().Split('\n')[0]}");
            }
        }
        return found;
    }

    /// <summary>The audit itself, on a file with known conversions: it must find each unheld one and none of the held ones.</summary>
    [Fact]
    public void Audit_FindsTheUnheldConversions_AndOnlyThem()
    {
        const string source = """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Probe
            {
                static readonly Scalar Rooted = 2.0;                 // held: a static readonly field
                static Tensor Unheld(Tensor x)
                {
                    Scalar local = 0.5;                              // UNHELD: a plain local may die during its last call
                    using Scalar lo = 0, hi = 1;                     // held
                    var a = x * 2;                                   // UNHELD: operator *(Tensor, int) converts inside
                    var b = x.clamp(0, 1);                           // UNHELD twice
                    var c = x.add(local, Rooted).clamp(lo, hi);      // held (local: counted where it is made)
                    var d = full(new long[] { 2 }, 3.0);             // UNHELD
                    var e = a - b;                                   // held: TorchSharp's subtraction has no α
                    NativeRuntime.WithoutCollection(() => { var f = x * 3; });  // held: no collection can run
                    var g = normal(1.0, 0.02, new long[] { 8 });     // UNHELD: randn(…).mul_(std).add_(mean) inside (CI, 2026-12-02)
                    var h = nn.functional.elu(x, 1.0);               // UNHELD: the first one seen (2026-11-30)
                    using var held = 0.25.ToScalar();                // held
                    var i = x.mul(0.5.ToScalar()).mul(held);         // UNHELD: an explicit conversion nobody holds
                    var j = x.mul((Scalar)0.75);                     // UNHELD: a cast
                    NativeRuntime.WithoutCollection(() => { System.Func<Tensor> later = () => x * 4; });  // UNHELD: may run later
                    return a + b + c + d + e + x.mul(local);         // UNHELD 5 times: tensor + tensor is add(b) with α = 1 inside
                }
                static readonly Scalar Nan = float.NaN;              // held: a member access, once
                static Tensor Members(Tensor x, (double Tau, int N) s)
                {
                    using Scalar tau = s.Tau;                        // held
                    return x.mul(Nan).gt(tau).logical_or(x.lt(s.N)).mul(float.PositiveInfinity);  // UNHELD twice, once each
                }
            }
            static class NativeRuntime { public static void WithoutCollection(System.Action body) => body(); }
            """;
        var tree = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest), "Probe.cs");
        var torchSharp = typeof(TorchSharp.torch).Assembly.Location;
        var compilation = CSharpCompilation.Create("Probe", [tree], References(p => p == torchSharp),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var found = UnheldScalars(compilation, "");
        // The lines marked UNHELD in the probe, once per mark ("twice", "5 times"), and no other.
        int[] expected = [8, 10, 11, 11, 13, 16, 17, 19, 20, 21, 22, 22, 22, 22, 22, 28, 28];
        Assert.True(found.Count == expected.Length, string.Join("\n", found));
        Assert.Equal(expected, found.Select(f => int.Parse(f.Split(':')[1])).Order());
        Assert.True(LibraryScalarMakers.Value.Unresolved.Count == 0, string.Join("\n", LibraryScalarMakers.Value.Unresolved.Take(20)));
    }

    /// <summary>The tests run in parallel, so their own temporaries race the same way (any test's allocation can start the
    /// collection); they use <see cref="HeldScalars"/> and RootedScalars. Left out: RootedScalarsTests, whose unheld library
    /// forms are the subject (the reference each held form is compared with), in a collection that runs alone.</summary>
    [Fact]
    public void NoUnheldImplicitScalars_InTheTests()
    {
        var compilation = Compile("Adp.Tests");
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        Assert.True(errors.Count == 0, $"the tests do not compile for the audit: {string.Join("; ", errors)}");
        var found = UnheldScalars(compilation, TestEnvironment.RepoRoot)
            .Where(f => !f.StartsWith(Path.Combine("tests", "Adp.Tests", "RootedScalarsTests.cs:"), StringComparison.Ordinal)).ToList();
        Assert.True(found.Count == 0, $"{found.Count} implicit scalars:\n" + string.Join("\n", found));
    }

    [Fact]
    public void NoUnheldImplicitScalars_InTheToolkitsSources()
    {
        var found = new List<string>();
        foreach (var project in Projects)
        {
            var compilation = Compile(project);
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
            Assert.True(errors.Count == 0, $"{project} does not compile for the audit: {string.Join("; ", errors)}");
            found.AddRange(UnheldScalars(compilation, TestEnvironment.RepoRoot));
        }
        Assert.True(found.Count == 0, $"{found.Count} implicit scalars:\n" + string.Join("\n", found));
    }
}
