//! Word classes for the scorer. A word (ASCII letters and digits, lowercased into a stack
//! buffer by the caller) maps to a bit set of classes through one `match`, which the compiler
//! turns into length-then-bytes comparisons: no hashing and no allocation per request.
//!
//! The lists are generic domain vocabularies (competition and university maths, formal logic,
//! scientific computing, everyday arithmetic, writing, small talk), not phrases lifted from the
//! dev set's house styles (the README warns that MMLU's last line, HumanEval's wrapper and
//! CHAMP's instruction line would let a scorer learn the format instead of the task).

pub const MATH: u32 = 1 << 0;
pub const ALGEBRA_LOGIC: u32 = 1 << 1;
pub const PROOF: u32 = 1 << 2;
pub const SCIENCE: u32 = 1 << 3;
pub const CODE: u32 = 1 << 4;
pub const SQL: u32 = 1 << 5;
pub const QUANTITY: u32 = 1 << 6;
pub const STEPS: u32 = 1 << 7;
pub const DESIGN: u32 = 1 << 8;
pub const WRITING: u32 = 1 << 9;
pub const ROLEPLAY: u32 = 1 << 10;
pub const GREET: u32 = 1 << 11;
pub const THANKS: u32 = 1 << 12;
pub const IDENTITY: u32 = 1 << 13;
pub const SUMMARY: u32 = 1 << 14;
pub const EDIT: u32 = 1 << 15;
pub const WH: u32 = 1 << 16;

/// Longest word the caller lowercases; longer words get no class (none of ours is longer).
pub const MAX_WORD: usize = 20;

/// The classes of one lowercased word.
pub fn word_class(w: &[u8]) -> u32 {
    match w {
        b"equation" | b"equations" | b"integer" | b"integers" | b"prime" | b"primes"
        | b"polynomial" | b"polynomials" | b"root" | b"roots" | b"coefficient"
        | b"coefficients" | b"inequality" | b"inequalities" | b"sequence" | b"sequences"
        | b"divisible" | b"divisor" | b"divisors" | b"remainder" | b"modulo" | b"mod"
        | b"triangle" | b"triangles" | b"circle" | b"radius" | b"angle" | b"angles" | b"vertex"
        | b"vertices" | b"polygon" | b"polyhedron" | b"probability" | b"integral"
        | b"derivative" | b"limit" | b"matrix" | b"matrices" | b"eigenvalue" | b"eigenvalues"
        | b"determinant" | b"subset" | b"subsets" | b"permutation" | b"permutations"
        | b"combinations" | b"digits" | b"parity" | b"positive" | b"negative" | b"nonnegative"
        | b"rational" | b"irrational" | b"sqrt" | b"log" | b"sin" | b"cos" | b"tan" | b"exp"
        | b"factorial" | b"binomial" | b"parabola" | b"curve" | b"plane" | b"origin"
        | b"coordinates" | b"interval" | b"satisfy" | b"satisfies" | b"satisfying"
        | b"infinitely" | b"finite" | b"infinite" | b"minimum" | b"maximum" | b"smallest"
        | b"largest" | b"greatest" | b"minimal" | b"maximal" | b"expression" | b"congruent"
        | b"gcd" | b"lcm" | b"real" | b"odd" | b"diagonal" | b"diagonals" | b"reciprocal"
        | b"reciprocals" | b"arithmetic" | b"geometric" | b"convex" | b"tangent"
        | b"perpendicular" | b"parallel" | b"ln" | b"distinct" | b"nonempty" | b"sum"
        | b"product" | b"solutions" | b"variable" | b"variables" | b"graph" | b"edges"
        | b"chord" | b"inscribed" | b"circumscribed" | b"area" | b"volume" | b"perimeter"
        | b"mean" | b"median" | b"expected" | b"random" | b"ways" | b"arrangements"
        | b"labelled" | b"labeled" => MATH,
        b"group" | b"groups" | b"subgroup" | b"subgroups" | b"abelian" | b"cyclic" | b"ring"
        | b"rings" | b"ideal" | b"ideals" | b"field" | b"fields" | b"homomorphism"
        | b"homomorphic" | b"isomorphism" | b"isomorphic" | b"automorphism" | b"kernel"
        | b"quotient" | b"coset" | b"cosets" | b"generator" | b"topological" | b"topology"
        | b"compact" | b"metric" | b"continuous" | b"differentiable" | b"manifold" | b"linear"
        | b"transformation" | b"subspace" | b"basis" | b"span" | b"dimension" | b"vector"
        | b"vectors" | b"symbolization" | b"predicate" | b"propositional" | b"tautology"
        | b"tautologous" | b"contradictory" | b"consistent" | b"inconsistent" | b"valid"
        | b"invalid" | b"premise" | b"premises" | b"antecedent" | b"consequent" | b"syllogism"
        | b"quantifier" | b"formula" | b"formulas" | b"wff" | b"logic" | b"logically"
        | b"entails" | b"implies" | b"iff" | b"disjunction" | b"conjunction" | b"negation"
        | b"biconditional" | b"converges" | b"diverges" | b"convergent" | b"divergent"
        | b"countable" | b"uncountable" | b"bijection" | b"injective" | b"surjective"
        | b"operation" | b"identity" | b"statement" | b"truth" | b"extension" => ALGEBRA_LOGIC,
        b"prove" | b"proof" | b"proofs" | b"theorem" | b"lemma" | b"corollary" | b"justify"
        | b"derive" | b"deduce" | b"rigorous" | b"rigorously" | b"hence" | b"therefore"
        | b"suppose" | b"let" | b"exists" | b"possible" | b"impossible" => PROOF,
        b"simulate" | b"simulation" | b"numerically" | b"numerical" | b"potential" | b"energy"
        | b"particle" | b"particles" | b"atom" | b"atoms" | b"molecule" | b"molecules"
        | b"quantum" | b"hamiltonian" | b"wavefunction" | b"lattice" | b"spin" | b"temperature"
        | b"thermal" | b"diffusion" | b"boundary" | b"discretize" | b"discretized" | b"grid"
        | b"mesh" | b"fourier" | b"spectrum" | b"spectral" | b"tensor" | b"velocity"
        | b"acceleration" | b"force" | b"forces" | b"mass" | b"gravitational" | b"density"
        | b"pressure" | b"entropy" | b"electron" | b"electrons" | b"photon" | b"optical"
        | b"wavelength" | b"frequency" | b"oscillator" | b"dynamics" | b"monte" | b"carlo"
        | b"kinetic" | b"stochastic" | b"differential" | b"ode" | b"pde" | b"runge" | b"kutta"
        | b"iteration" | b"iterations" | b"convergence" | b"tolerance" | b"numpy" | b"scipy"
        | b"np" | b"ndarray" | b"dtype" | b"eigenvector" | b"eigenvectors" | b"hermitian"
        | b"operator" | b"wave" | b"sigma" | b"epsilon" | b"omega" | b"alpha" | b"beta"
        | b"gamma" | b"lambda" | b"theta" | b"rho" | b"kappa" | b"absorption" | b"amplitude"
        | b"band" | b"bands" | b"beam" | b"beams" | b"bilayer" | b"boltzmann" | b"boson"
        | b"bosons" | b"bvp" | b"capacitance" | b"cell" | b"cells" | b"channel" | b"channels"
        | b"charge" | b"charges" | b"chemical" | b"chemistry" | b"circuit" | b"coherence"
        | b"coherent" | b"concentration" | b"crystal" | b"crystals" | b"current" | b"damped"
        | b"damping" | b"decay" | b"diffraction" | b"dirac" | b"discretization" | b"dna"
        | b"dose" | b"ecology" | b"eigen" | b"eigenstate" | b"eigenstates" | b"electric"
        | b"electrical" | b"emission" | b"entanglement" | b"enzyme" | b"enzymes" | b"epidemic"
        | b"equilibrium" | b"excited" | b"extrapolation" | b"fermion" | b"fermions" | b"fiber"
        | b"fibre" | b"fluid" | b"fluids" | b"gene" | b"genes" | b"genome" | b"genomic"
        | b"gradient" | b"graphene" | b"ground" | b"hamiltonians" | b"heisenberg" | b"hessian"
        | b"hubbard" | b"infection" | b"integration" | b"integrator" | b"intensity"
        | b"interferometer" | b"interpolation" | b"ion" | b"ionic" | b"ions" | b"ising"
        | b"isotope" | b"ivp" | b"jacobian" | b"kinetics" | b"laser" | b"lasers" | b"lens"
        | b"lenses" | b"lindblad" | b"magnet" | b"magnetic" | b"magnetization" | b"magnets"
        | b"matplotlib" | b"maxwell" | b"mechanics" | b"minimization" | b"molecular"
        | b"navier" | b"neuron" | b"neurons" | b"neutron" | b"newton" | b"newtonian"
        | b"nuclear" | b"nucleus" | b"optics" | b"optimization" | b"orbit" | b"orbital"
        | b"orbitals" | b"orbits" | b"pharmacokinetic" | b"phonon" | b"phonons" | b"photons"
        | b"plasma" | b"polarization" | b"population" | b"propagation" | b"protein"
        | b"proteins" | b"proton" | b"pump" | b"pumped" | b"quadrature" | b"qubit" | b"qubits"
        | b"radiation" | b"reaction" | b"reactions" | b"refraction" | b"relativistic"
        | b"relativity" | b"resistance" | b"rna" | b"scattering" | b"schrodinger"
        | b"semiconductor" | b"simulated" | b"simulating" | b"sir" | b"solver" | b"solvers"
        | b"spectroscopy" | b"spins" | b"statistical" | b"stokes" | b"superposition" | b"sympy"
        | b"thermodynamic" | b"thermodynamics" | b"trajectories" | b"trajectory"
        | b"turbulence" | b"viscosity" | b"voltage" | b"wavefunctions" | b"wavelengths" => SCIENCE,
        b"def" | b"return" | b"returns" | b"class" | b"import" | b"print" | b"int" | b"str"
        | b"dict" | b"tuple" | b"bool" | b"true" | b"false" | b"none" | b"null" | b"self"
        | b"fn" | b"void" | b"const" | b"public" | b"static" | b"string" | b"array" | b"arrays"
        | b"python" | b"java" | b"javascript" | b"typescript" | b"rust" | b"golang" | b"cpp"
        | b"code" | b"script" | b"program" | b"function" | b"functions" | b"implement"
        | b"implementation" | b"bug" | b"compile" | b"api" | b"regex" | b"algorithm"
        | b"recursion" | b"recursive" | b"elif" | b"len" | b"range" | b"docstring" | b"args"
        | b"param" | b"float" | b"struct" | b"async" => CODE,
        b"select" | b"join" | b"table" | b"tables" | b"column" | b"columns" | b"schema"
        | b"query" | b"sql" | b"sqlite" | b"database" | b"foreign" | b"primary" | b"varchar" => SQL,
        b"dollars" | b"dollar" | b"cents" | b"price" | b"cost" | b"costs" | b"pay" | b"pays"
        | b"paid" | b"buy" | b"buys" | b"bought" | b"sell" | b"sells" | b"sold" | b"earn"
        | b"earns" | b"earned" | b"spend" | b"spends" | b"spent" | b"each" | b"per" | b"total"
        | b"hour" | b"hours" | b"minute" | b"minutes" | b"day" | b"days" | b"week" | b"weeks"
        | b"month" | b"months" | b"miles" | b"feet" | b"pounds" | b"ounces" | b"gallons"
        | b"percent" | b"half" | b"twice" | b"left" | b"remaining" | b"fewer" | b"more"
        | b"less" | b"than" | b"every" | b"old" | b"years" => QUANTITY,
        b"step" | b"steps" | b"first" | b"then" | b"finally" | b"must" | b"ensure"
        | b"constraint" | b"constraints" | b"requirement" | b"requirements" | b"exactly"
        | b"only" | b"without" | b"include" | b"including" | b"format" | b"criteria" | b"rules"
        | b"conditions" | b"following" | b"structure" | b"additionally" => STEPS,
        b"design" | b"architecture" | b"architect" | b"scalable" | b"scalability"
        | b"distributed" | b"system" | b"systems" | b"tradeoff" | b"tradeoffs" | b"framework"
        | b"strategy" | b"strategies" | b"plan" | b"infrastructure" | b"microservice"
        | b"microservices" | b"pipeline" | b"component" | b"components" | b"refactor"
        | b"optimize" | b"optimise" | b"performance" | b"latency" | b"throughput"
        | b"concurrency" | b"concurrent" | b"model" | b"analysis" | b"assessment"
        | b"comprehensive" => DESIGN,
        b"write" | b"essay" | b"blog" | b"post" | b"story" | b"poem" | b"limerick" | b"outline"
        | b"article" | b"report" | b"email" | b"draft" | b"brochure" | b"speech" | b"headline"
        | b"paragraph" | b"paragraphs" | b"tone" | b"audience" | b"style" | b"persuasive"
        | b"narrative" | b"describe" | b"descriptive" | b"creative" | b"compose" | b"proposal"
        | b"slogan" | b"content" | b"words" | b"sentences" | b"translate" | b"translation"
        | b"explain" | b"discuss" | b"compare" | b"contrast" | b"evaluate" | b"provide"
        | b"create" | b"develop" | b"details" | b"rewrite" | b"rephrase" | b"revise" | b"edit"
        | b"list" | b"suggest" | b"propose" | b"analyze" | b"analyse" | b"generate"
        | b"questions" | b"writing" | b"written" | b"writes" | b"wrote" | b"designing"
        | b"drafting" | b"describing" | b"explaining" | b"creating" | b"composing"
        | b"planning" | b"proposing" | b"outlining" | b"rewriting" | b"translating" | b"essays"
        | b"stories" | b"poems" | b"articles" | b"reports" | b"emails" | b"letters"
        | b"speeches" | b"posts" => WRITING,
        b"imagine" | b"pretend" | b"act" | b"role" | b"roleplay" | b"persona" | b"character"
        | b"assume" | b"picture" => ROLEPLAY,
        b"hi" | b"hello" | b"hey" | b"hiya" | b"greetings" | b"morning" | b"evening" | b"sup"
        | b"yo" | b"howdy" | b"bye" | b"goodbye" | b"cheers" => GREET,
        b"thanks" | b"thank" | b"thx" | b"ty" | b"appreciate" | b"appreciated" | b"great"
        | b"awesome" | b"perfect" | b"cool" | b"ok" | b"okay" => THANKS,
        b"yourself" | b"you" | b"your" | b"created" | b"name" => IDENTITY,
        b"summarize" | b"summarise" | b"summary" | b"summarizing" | b"tldr" | b"recap"
        | b"restate" | b"shorten" | b"condense" => SUMMARY,
        b"rework" | b"update" | b"alter" | b"reformulate" | b"modify" | b"change" | b"previous"
        | b"earlier" | b"above" | b"again" | b"instead" | b"reply" | b"response" => EDIT,
        b"what" | b"who" | b"when" | b"where" | b"which" | b"why" | b"how" => WH,
        _ => 0,
    }
}

/// Classes that only a pair of consecutive words carries.
pub fn bigram_class(prev: &[u8], w: &[u8]) -> u32 {
    match (prev, w) {
        (b"show", b"that") | (b"prove", b"that") | (b"such", b"that") | (b"for", b"all") => PROOF,
        (b"how", b"much") => QUANTITY,
        (b"step", b"by") | (b"at", b"least") | (b"at", b"most") => STEPS,
        (b"who", b"are")
        | (b"who", b"made")
        | (b"who", b"built")
        | (b"who", b"trained")
        | (b"who", b"developed")
        | (b"about", b"yourself") => IDENTITY,
        (b"one", b"sentence") | (b"in", b"short") => SUMMARY,
        (b"act", b"as") | (b"you", b"are") => ROLEPLAY,
        (b"create", b"table") => SQL,
        _ => 0,
    }
}

/// Verbs that, opening a sentence, ask for work to be done: an imperative ("Write...",
/// "Prove...", "Implement...") rather than a question to be answered.
pub fn demand_verb(w: &[u8]) -> bool {
    matches!(
        w,
        b"write"
            | b"compose"
            | b"draft"
            | b"describe"
            | b"explain"
            | b"create"
            | b"design"
            | b"develop"
            | b"build"
            | b"implement"
            | b"complete"
            | b"fix"
            | b"debug"
            | b"refactor"
            | b"solve"
            | b"compute"
            | b"calculate"
            | b"find"
            | b"prove"
            | b"show"
            | b"determine"
            | b"evaluate"
            | b"list"
            | b"give"
            | b"generate"
            | b"suggest"
            | b"propose"
            | b"compare"
            | b"analyze"
            | b"analyse"
            | b"translate"
            | b"rewrite"
            | b"rephrase"
            | b"edit"
            | b"imagine"
            | b"pretend"
            | b"act"
            | b"picture"
            | b"plan"
            | b"outline"
            | b"provide"
            | b"identify"
            | b"extract"
            | b"convert"
            | b"derive"
            | b"estimate"
            | b"simulate"
            | b"optimize"
            | b"optimise"
            | b"classify"
            | b"read"
            | b"craft"
            | b"produce"
            | b"prepare"
            | b"discuss"
    )
}

/// Words that may precede the verb of a request without changing it: "Please write",
/// "Could you kindly explain", "I need you to implement", "Now, summarize".
pub fn polite_lead(w: &[u8]) -> bool {
    matches!(
        w,
        b"please"
            | b"kindly"
            | b"could"
            | b"can"
            | b"would"
            | b"will"
            | b"you"
            | b"i"
            | b"we"
            | b"need"
            | b"want"
            | b"like"
            | b"d"
            | b"to"
            | b"help"
            | b"me"
            | b"us"
            | b"now"
            | b"also"
            | b"then"
            | b"and"
            | b"so"
            | b"just"
            | b"quickly"
    )
}

/// Pleasantries that pad small talk ("hope you're doing well", "good to see you again"):
/// counted with greetings and thanks when deciding whether a message is only small talk.
pub fn pleasantry(w: &[u8]) -> bool {
    matches!(
        w,
        b"hope"
            | b"doing"
            | b"well"
            | b"there"
            | b"good"
            | b"nice"
            | b"fine"
            | b"glad"
            | b"lovely"
            | b"today"
            | b"again"
            | b"all"
            | b"everyone"
            | b"dear"
            | b"so"
            | b"very"
            | b"much"
            | b"lot"
            | b"re"
            | b"m"
            | b"s"
            | b"ll"
            | b"ve"
            | b"d"
            | b"it"
            | b"that"
            | b"for"
            | b"in"
            | b"advance"
            | b"a"
            | b"i"
    )
}
