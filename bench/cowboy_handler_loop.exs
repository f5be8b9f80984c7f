# The CPU cost of H2Flow.Cowboy.StreamHandler's own bookkeeping, without Cowboy: the callbacks of
# HTTP/2 requests (init, one 16 KiB DATA frame with END_STREAM, read_body, the response
# message, the request process's EXIT, terminate) run in a loop in one process, 100 streams at
# a time, through the handler and through a pass-through handler. Both sit in front of small
# stand-ins for `:cowboy_stream` and `:cowboy_stream_h` defined here, so this script must not
# run in a VM that has Cowboy loaded. Run it with the release NIF:
#
#     MIX_ENV=bench mix run bench/cowboy_handler_loop.exs [ROUNDS] [PAIRS]   (default 300, 11)
#
# It prints the medians over PAIRS interleaved pairs of ROUNDS × 100 requests, in µs per
# request, and the handler's overhead per pair (handler − pass-through).

if Code.ensure_loaded?(:cowboy) do
  raise "bench/cowboy_handler_loop.exs replaces :cowboy_stream: run it without Cowboy loaded"
end

defmodule :cowboy_stream do
  # cowboy_stream's dispatch: each handler calls the next one of `stream_handlers`.
  def init(id, req, opts) do
    case Map.get(opts, :stream_handlers, [:cowboy_stream_h]) do
      [] ->
        {[], :undefined}

      [handler | rest] ->
        {commands, state} = handler.init(id, req, %{opts | stream_handlers: rest})
        {commands, {handler, state}}
    end
  end

  def data(id, fin, data, {handler, state}) do
    {commands, state} = handler.data(id, fin, data, state)
    {commands, {handler, state}}
  end

  def info(id, msg, {handler, state}) do
    {commands, state} = handler.info(id, msg, state)
    {commands, {handler, state}}
  end

  def terminate(id, reason, {handler, state}), do: handler.terminate(id, reason, state)
end

defmodule :cowboy_stream_h do
  # What matters here of cowboy_stream_h: it buffers DATA, answers a read at the end of the body
  # without a flow command, returns a response command, and stops when its process exits.
  def init(_id, _req, _opts), do: {[], %{buffer: 0, fin: false}}

  def data(_id, fin, data, s),
    do: {[], %{s | buffer: s.buffer + byte_size(data), fin: fin == :fin}}

  def info(_id, {:read_body, _pid, _ref, length, _period}, s),
    do: if(s.fin, do: {[], %{s | buffer: 0}}, else: {[{:flow, length}], s})

  def info(_id, {:response, status, headers, body}, s),
    do: {[{:response, status, headers, body}], s}

  def info(_id, {:EXIT, _pid, _reason}, s), do: {[:stop], s}
  def info(_id, _msg, s), do: {[], s}
  def terminate(_id, _reason, _s), do: :ok
end

defmodule CowboyHandlerLoop.Pass do
  def init(id, req, opts), do: :cowboy_stream.init(id, req, opts)
  def data(id, fin, data, next), do: :cowboy_stream.data(id, fin, data, next)
  def info(id, msg, next), do: :cowboy_stream.info(id, msg, next)
  def terminate(id, reason, next), do: :cowboy_stream.terminate(id, reason, next)
end

defmodule CowboyHandlerLoop do
  @body :binary.copy("a", 16_384)
  @concurrent 100

  # µs per request over `rounds` rounds of 100 streams, in a fresh process (its own dictionary).
  def run(handler, rounds) do
    task =
      Task.async(fn ->
        opts =
          %{}
          |> H2Flow.Cowboy.StreamHandler.cowboy_opts()
          |> Map.put(:stream_handlers, [handler, :cowboy_stream_h])

        req = %{version: :"HTTP/2", has_body: true, body_length: byte_size(@body)}
        {time, _} = :timer.tc(fn -> Enum.reduce(1..rounds, 1, &round(&1, &2, req, opts)) end)
        time / (rounds * @concurrent)
      end)

    Task.await(task, :infinity)
  end

  defp round(_, first_id, req, opts) do
    ids = Enum.map(0..(@concurrent - 1), &(first_id + 2 * &1))
    streams = Enum.map(ids, &{&1, elem(:cowboy_stream.init(&1, req, opts), 1)})
    streams = step(streams, &:cowboy_stream.data(&1, :fin, @body, &2))
    read = {:read_body, self(), make_ref(), 8_000_000, 15_000}
    streams = step(streams, &:cowboy_stream.info(&1, read, &2))
    streams = step(streams, &:cowboy_stream.info(&1, {:response, 200, %{}, "ok"}, &2))
    streams = step(streams, &:cowboy_stream.info(&1, {:EXIT, self(), :normal}, &2))
    Enum.each(streams, fn {id, state} -> :cowboy_stream.terminate(id, :normal, state) end)
    first_id + 2 * @concurrent
  end

  defp step(streams, fun),
    do: Enum.map(streams, fn {id, state} -> {id, elem(fun.(id, state), 1)} end)
end

{rounds, pairs} =
  case System.argv() do
    [] -> {300, 11}
    [r] -> {String.to_integer(r), 11}
    [r, p] -> {String.to_integer(r), String.to_integer(p)}
  end

IO.puts("NIF profile: #{H2Flow.Native.profile()}; #{pairs} pairs of #{rounds} × 100 requests")

results =
  for _ <- 1..pairs do
    pass = CowboyHandlerLoop.run(CowboyHandlerLoop.Pass, rounds)
    handler = CowboyHandlerLoop.run(H2Flow.Cowboy.StreamHandler, rounds)
    {pass, handler}
  end

median = fn xs -> xs |> Enum.sort() |> Enum.at(div(length(xs), 2)) end
pass = median.(Enum.map(results, &elem(&1, 0)))
handler = median.(Enum.map(results, &elem(&1, 1)))
overhead = median.(Enum.map(results, fn {p, h} -> h - p end))

IO.puts(
  "pass-through #{Float.round(pass, 2)} µs/request, H2Flow.Cowboy.StreamHandler " <>
    "#{Float.round(handler, 2)} µs/request, overhead #{Float.round(overhead, 2)} µs/request"
)
