defmodule H2Flow.Connection.Reads do
  @moduledoc false
  # The request bodies of a connection's streams: holds the body bytes the engine reports
  # until a read takes them, registers the handler's reads with the engine and answers each
  # with all of its bytes in one message when the engine says it is complete. What a read gets,
  # and when, is the engine's decision (HTTP/2's scheduler rule 8; the HTTP/1.1 engine has the
  # same model).

  alias H2Flow.Connection.{Spans, Streams}
  alias H2Flow.Connection.Streams.Stream

  import Streams, only: [put: 3, answer: 4]

  @doc "Body bytes the engine reported: the waiting read's, else held for the next one."
  def data(st, id, data, fin) do
    case st.by_id do
      %{^id => %Stream{} = s} ->
        s = if s.span, do: Spans.received(s, byte_size(data)), else: s
        s = %{s | fin: s.fin or fin}

        s =
          case s.read do
            _ when data == "" -> s
            {reader, ref, timer, acc} -> %{s | read: {reader, ref, timer, [data | acc]}}
            nil -> %{s | held: [data | s.held]}
          end

        put(st, id, s)

      _ ->
        st
    end
  end

  @doc "The engine says the stream's read is complete: it is answered with its bytes."
  def done(st, id, status) do
    case st.by_id do
      %{^id => %Stream{read: {reader, ref, timer, acc}} = s} ->
        if timer, do: Process.cancel_timer(timer)
        send(reader, {ref, status, Enum.reverse(acc)})
        put(st, id, %{s | read: nil, read_all: status == :fin})

      _ ->
        st
    end
  end

  @doc "A handler's read (`{:read, length, period}`), or `:read_all` for a body it has whole."
  # The whole body came with the request and the handler took it: hand it over (credit).
  def read(st, id, s, _from, nil, :read_all) do
    _ = st.mod.read(st.engine, id, 0)
    put(st, id, %{s | read_all: true})
  end

  # The engine hands the read everything it holds (here: `held`), and what arrives while it
  # waits; the answer carries all of it.
  def read(st, id, s, from, ref, {:read, length, period}) do
    held = Enum.reverse(s.held)
    s = %{s | held: []}

    case st.mod.read(st.engine, id, length) do
      :wait ->
        timer =
          if period != :infinity, do: Process.send_after(self(), {:read_timeout, id, ref}, period)

        put(st, id, %{s | read: {from, ref, timer, Enum.reverse(held)}})

      {:error, :closed} when s.fin ->
        # Both sides ended the stream long ago and the engine forgot it: nothing was left.
        answer(from, ref, :fin, held, put(st, id, %{s | read_all: true}))

      {:error, :closed} = error ->
        answer(from, ref, error, put(st, id, s))

      status ->
        answer(from, ref, status, held, put(st, id, %{s | read_all: status == :fin}))
    end
  end

  @doc "The period of a waiting read expired."
  def timeout(st, id, ref) do
    case st.by_id do
      %{^id => %Stream{read: {reader, ^ref, _timer, acc}} = s} ->
        # `false`: the engine no longer has the read, because it closed the stream.
        if st.mod.read_timeout(st.engine, id),
          do: send(reader, {ref, :more, Enum.reverse(acc)}),
          else: send(reader, {ref, {:error, :closed}})

        put(st, id, %{s | read: nil})

      _ ->
        st
    end
  end

  @doc "A waiting read whose stream the engine closed (a reset, a send timeout) is answered."
  def fail(%Stream{read: {reader, ref, timer, _}} = s) do
    if timer, do: Process.cancel_timer(timer)
    send(reader, {ref, {:error, :closed}})
    %{s | read: nil}
  end

  def fail(s), do: s

  # The answer to a read: its status and its bytes.
  defp answer(from, ref, status, chunks, st) do
    send(from, {ref, status, chunks})
    st
  end
end
